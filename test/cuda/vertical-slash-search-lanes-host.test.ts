/**
 * The count search's walk shared by several lanes (vertical-slash-search.cu vs_block_pairs_lane,
 * split at vs_certain_restart) on the host, no GPU: vertical-slash-search-lanes-host.cpp is built with
 * g++ around the walk header as it is (vertical-slash-walk.cuh) and the two functions cut from the
 * .cu. Over offset rows built to hit the split rule (sparse random offsets, gaps of 127 / 128 / 129
 * after adjacent pairs, block edges, the largest offsets, every offset kept, n from 50 to 20011) and
 * 1 / 2 / 3 / 4 / 8 / 16 / 32 lanes, every 64-row block: the lanes' pairs sum to vs_block_pairs'
 * (one thread walking by ranges), with the columns counted by gallops, from a bitmap
 * (vs_columns_below) and from its two-level form (vs_columns_below_coarse, session 7). Skipped with a message where g++ is missing. Also the walkLanes
 * option's checks and its 'auto' rule (CPU only).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { kernelSourcePath } from '../../src/backends/cuda/kernel-source.js';
import { deviceFunctionText, gppProblem, hostHarnessPath } from './kernel-source-text.js';
import { MAX_WALK_LANES, VerticalSlashCountSearch, autoWalkLanes } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';

const problem = gppProblem();
if (problem) console.log(`# vertical-slash lanes host tests skipped: ${problem}`);

describe('vertical-slash count search: a block walk shared by lanes, on the host (g++ harness)', { skip: problem ?? false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vs-lanes-host-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Builds the harness around the two functions (as cut from the .cu, then `edit`ed); returns its path. */
  const build = (name: string, edit: (functions: string) => string = (f) => f): string => {
    const cu = readFileSync(kernelSourcePath('vertical-slash-search.cu'), 'utf8');
    const functions = join(dir, `${name}.inc`);
    const text = ['vs_certain_restart', 'vs_columns_below', 'vs_columns_below_coarse', 'vs_block_pairs_lane'].map((f) => deviceFunctionText(cu, f)).join('\n');
    const edited = edit(text);
    if (edited === text && name !== 'kernel') throw new Error(`vertical-slash lanes host test: the ${name} edit changed nothing`);
    writeFileSync(functions, edited);
    const exe = join(dir, name);
    try {
      execFileSync('g++', ['-std=c++20', '-O2', '-Wno-unknown-pragmas', '-I', dirname(kernelSourcePath('vertical-slash-walk.cuh')),
        `-DLANE_FUNCTIONS_FILE="${functions}"`, hostHarnessPath('vertical-slash-search-lanes-host.cpp'), '-o', exe], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new Error(`vertical-slash lanes host harness did not compile:\n${String((e as { stderr?: Buffer }).stderr ?? e)}`);
    }
    return exe;
  };
  const summary = (exe: string, seed: number) => {
    const out = execFileSync(exe, [String(seed)], { encoding: 'utf8' });
    const m = /rows (\d+) blocks (\d+) checks (\d+) pairDiffs (\d+) splitBlocks (\d+)/.exec(out);
    assert.ok(m, `seed ${seed}: harness printed no summary:\n${out}`);
    const [rows, blocks, checks, pairDiffs, splitBlocks] = m.slice(1).map(Number);
    return { out, rows, blocks, checks, pairDiffs, splitBlocks };
  };

  test('the lanes pairs sum to the one-thread walk on every block, 1-32 lanes, columns by gallops, by bitmap and by the two-level bitmap', () => {
    const exe = build('kernel');
    for (const seed of [1, 2, 3]) {
      const { out, rows, blocks, checks, pairDiffs, splitBlocks } = summary(exe, seed);
      assert.ok(rows >= 240 && blocks > 20_000 && checks === 3 * 7 * blocks, `seed ${seed}: only ${rows} rows, ${blocks} blocks, ${checks} checks`);
      // The split must have been exercised: blocks whose pairs more than one lane contributed to.
      assert.ok(splitBlocks > 5_000, `seed ${seed}: only ${splitBlocks} blocks split between lanes`);
      assert.equal(pairDiffs, 0, `seed ${seed}:\n${out}`);
    }
  });

  test('the harness catches a wrong split: restarts at gaps of 65, a lane stopping one index late, no last-range columns, a bitmap count off, a two-level count off', () => {
    const mutants: [string, (f: string) => string][] = [
      ['gap65', (f) => f.replace('>= 2 * VS_BLOCK;', '>= VS_BLOCK + 1;')],
      ['stop', (f) => f.replace('i < lo && vs_certain_restart', 'i < lo - 1 && vs_certain_restart')],
      ['last', (f) => f.replace('if (i < 0) cols += next;', '')],
      ['bitmap', (f) => f.replace('(r != 0 ? __popc', '(r > 1 ? __popc')],
      ['two-level', (f) => f.replace('for (int j = w & ~3; j < w; ++j)', 'for (int j = w & ~3; j + 1 < w; ++j)')],
    ];
    for (const [name, edit] of mutants) {
      const { pairDiffs } = summary(build(name, edit), 1);
      assert.ok(pairDiffs > 0, `the ${name} mutant passed the harness`);
    }
  });
});

describe('count search walkLanes option (CPU: checked before anything touches the device)', () => {
  // The constructor only records the runtime; no buffer is sized until a search runs.
  const rt = {} as unknown as CudaRuntime;
  test('takes a power of two in [1, 32] or auto, with probeLevels only; the column bitmap with walkLanes only', () => {
    assert.equal(MAX_WALK_LANES, 32);
    for (const bad of [0, 3, 6, 64, 2.5, -4]) {
      assert.throws(() => new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, walkLanes: bad }), /walkLanes must be a power of two in \[1, 32\] or 'auto'/, `walkLanes ${bad}`);
    }
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { walkLanes: 8 }), /walkLanes needs probeLevels/);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { probeLevels: 'auto', walkLanes: 8 }).walkLanes, 8);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { probeLevels: 2, walkLanes: 'auto' }).walkLanes, 'auto');
    assert.equal(new VerticalSlashCountSearch(rt, 4, { probeLevels: 'auto' }).walkLanes, null, 'one thread per block walk by default');
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, walkColumnBitmap: true }), /walkColumnBitmap needs walkLanes/);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, walkLanes: 4, walkColumnBitmap: true }).walkColumnBitmap, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, walkLanes: 4 }).walkColumnBitmap, false);
  });

  test("'auto' takes the most lanes whose walk units all fit the resident blocks", () => {
    // H100, 64 registers x 512 threads: 2 blocks per SM, 264 resident.
    // Organism 16K (256 blocks), 15 probes: 8 lanes = 15 x 4 x 4 = 240 units; 16 would be 480.
    assert.equal(autoWalkLanes(15, 4, 256, 264), 8);
    // Organism 4K (64 blocks): 32 lanes = 15 x 4 x 4 = 240.
    assert.equal(autoWalkLanes(15, 4, 64, 264), 32);
    // Llama-8B 16K, 7 probes: 2 lanes = 7 x 32 x 1 = 224; 4 would be 448.
    assert.equal(autoWalkLanes(7, 32, 256, 264), 2);
    // Too many units even at one lane: 1.
    assert.equal(autoWalkLanes(7, 32, 2048, 264), 1);
    assert.equal(autoWalkLanes(1, 1, 1, 10_000), 32, 'at most 32');
  });
});
