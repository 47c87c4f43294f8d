/**
 * The batched count search's walk by runs on the host, no GPU: vertical-slash-walk-host.cpp is built
 * with g++ around the walk header as it is (vertical-slash-walk.cuh) and the run-mark functions cut
 * from the sources (vs_mark_runs from vertical-slash-search.cu; the block scan it runs, block_exclusive_scan
 * with BlockScanMax, from top-k.cuh), those run on an emulated
 * 512-thread block so their chunking and carry are the kernel's. Over FlexPrefill-like offset rows
 * (the forced diagonals 0..63 plus 448 / 960 / 5000 more of 16384: random, clustered, at the largest
 * offsets, on block edges, gaps of exactly 64 / 65, all n kept; also n = 130, 1000, 4096, 20011), every
 * 64-row block: the kernel's run starts equal their definition, and vs_walk_runs gives vs_walk_ranges'
 * ranges and pairs. Skipped with a message where g++ (C++20 with <barrier>) is missing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { kernelSourcePath } from '../../src/backends/cuda/kernel-source.js';
import { deviceFunctionText, gppProblem, hostHarnessPath } from './kernel-source-text.js';

const problem = gppProblem();
if (problem) console.log(`# vertical-slash walk host tests skipped: ${problem}`);

describe('vertical-slash walk by runs on the host (g++ harness)', { skip: problem ?? false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vs-walk-host-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('deviceFunctionText takes one whole function and refuses a missing one', () => {
    const src = '__device__ int a(int x) {\n  return x;\n}\n\n__device__ int b(int y) {\n  if (y) {\n    return 1;\n  }\n  return 0;\n}\n';
    assert.equal(deviceFunctionText(src, 'b'), '__device__ int b(int y) {\n  if (y) {\n    return 1;\n  }\n  return 0;\n}\n');
    assert.throws(() => deviceFunctionText(src, 'c'), /no device function c/);
  });

  test('run marks equal their definition; walk by runs = walk by ranges on every block (FlexPrefill-like rows)', () => {
    const cu = readFileSync(kernelSourcePath('vertical-slash-search.cu'), 'utf8');
    const topK = readFileSync(kernelSourcePath('top-k.cuh'), 'utf8');
    const maxOp = /^struct BlockScanMax \{\n[\s\S]*?\n\};\n/m.exec(topK);
    assert.ok(maxOp, 'top-k.cuh: no struct BlockScanMax');
    const marks = join(dir, 'marks.inc');
    writeFileSync(marks, `${maxOp[0]}\n${deviceFunctionText(topK, 'block_exclusive_scan')}\n${deviceFunctionText(cu, 'vs_mark_runs')}`);
    const exe = join(dir, 'walk-host');
    try {
      execFileSync('g++', ['-std=c++20', '-O2', '-pthread', '-Wno-unknown-pragmas', '-I', dirname(kernelSourcePath('vertical-slash-walk.cuh')),
        `-DMARK_FUNCTIONS_FILE="${marks}"`, hostHarnessPath('vertical-slash-walk-host.cpp'), '-o', exe], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      const stderr = String((e as { stderr?: Buffer }).stderr ?? e);
      // An old toolchain without C++20 <barrier> cannot build the emulated block: say so, do not fail.
      if (/barrier/.test(stderr) && /No such file|not a member/.test(stderr)) {
        console.log(`# vertical-slash walk host test skipped: g++ lacks C++20 <barrier>`);
        return;
      }
      throw new Error(`vertical-slash walk host harness did not compile:\n${stderr}`);
    }
    for (const seed of [1, 2]) {
      const out = execFileSync(exe, [String(seed)], { encoding: 'utf8' });
      const m = /rows (\d+) blocks (\d+) markDiffs (\d+) rangeDiffs (\d+) pairDiffs (\d+)/.exec(out);
      assert.ok(m, `seed ${seed}: harness printed no summary:\n${out}`);
      const [rows, blocks, markDiffs, rangeDiffs, pairDiffs] = m.slice(1).map(Number);
      assert.ok(rows > 200 && blocks > 40_000, `seed ${seed}: only ${rows} rows, ${blocks} blocks checked`);
      assert.deepEqual({ markDiffs, rangeDiffs, pairDiffs }, { markDiffs: 0, rangeDiffs: 0, pairDiffs: 0 }, `seed ${seed}:\n${out}`);
    }
  });
});
