/**
 * Host-side helpers of the GPU Vertical-Slash method (CPU only): the range-slot offsets the index
 * kernels and the prefill kernel share, and the count search for a target sparsity, which must pick
 * exactly the counts the CPU method picks when its probes return the CPU's layer pairs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { kernelSourcePath } from '../../src/backends/cuda/kernel-source.js';
import { describe, test } from 'node:test';
import {
  AUTO_MMA_MIN_CONTEXT, AUTO_MMA_MIN_SPARSITY, AUTO_VERTICAL_SLASH_WGMMA_TILING, DEFAULT_VERTICAL_SLASH_ROW_TILES, autoRunsMma,
  verticalSlashKernelChoice,
} from '../../src/backends/cuda/kernels/vertical-slash-prefill.js';
import { resolveVerticalSlashWgmmaTiling } from '../../src/backends/cuda/kernels/vertical-slash-prefill-wgmma.js';
import {
  AUTO_MAX_PROBE_HEADS, AUTO_SLOT_BUDGET_BYTES, VerticalSlashCountSearch, autoProbeLevels, columnBitmapFits, maxProbeLevels,
} from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { chooseVerticalSlashCounts } from '../../src/backends/cuda/vertical-slash-counts.js';
import { verticalSlashRangeOffset, verticalSlashRangeSlots } from '../../src/backends/cuda/vertical-slash-layout.js';
import { SINK_LOCAL_BLOCK, sinkLocalLayout } from '../../src/backends/cuda/vertical-slash-sink-local.js';
import { type SinkLocalRule, sinkLocalKeys } from '../../src/methods/sink-local.js';
import { IndexScratch } from '../../src/methods/select.js';
import { forcedRanks } from '../../src/methods/vertical-slash-pattern.js';
import { FORCED_COLUMNS, FORCED_DIAGONALS, type HeadEstimate } from '../../src/methods/vertical-slash-prefill.js';
import { VerticalSlashPrefill } from '../../src/methods/vertical-slash.js';
import { randomGenerator } from './helpers.js';

/** The CPU method with its count rule and pair count reachable from the test. */
class ExposedVerticalSlash extends VerticalSlashPrefill {
  choose(estimates: HeadEstimate[], n: number) {
    return this.chooseCounts(estimates, n);
  }

  pairsOfLayer(estimates: HeadEstimate[], n: number, kv: number, ks: number): number {
    return estimates.reduce((sum, est) => sum + this.pairsFor(est, n, kv, ks), 0);
  }
}

/** Random per-head scores with a few heavy columns and diagonals, ranked as the CPU method ranks them. */
function randomEstimates(n: number, H: number, seed: number): HeadEstimate[] {
  const rand = randomGenerator(seed);
  const idx = new IndexScratch();
  return Array.from({ length: H }, () => {
    const vertical = new Float64Array(n), slash = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      vertical[j] = Math.exp(3 * rand());
      slash[j] = Math.exp(3 * rand()) / (1 + j / 64);
    }
    const rankV = new Int32Array(n), rankS = new Int32Array(n);
    forcedRanks(vertical, n, FORCED_COLUMNS, idx, rankV);
    forcedRanks(slash, n, FORCED_DIAGONALS, idx, rankS);
    return { vertical, slash, rankV, rankS };
  });
}

describe('GPU vertical-slash host helpers', () => {
  test('range slot offsets are the running sum of min(C, m + 2) slots per block', () => {
    for (const C of [1, 2, 3, 7, 64, 100, 5000]) {
      let sum = 0;
      for (let m = 0; m <= 300; m++) {
        assert.equal(verticalSlashRangeOffset(m, C), sum, `m=${m} C=${C}`);
        sum += Math.min(C, m + 2);
      }
      assert.equal(verticalSlashRangeSlots(301, C), sum);
    }
  });

  const cases = [
    { n: 700, H: 3, s: 0.5, seed: 1 },
    { n: 700, H: 3, s: 0.9, seed: 2 },
    { n: 1000, H: 2, s: 0.95, seed: 3 }, // forced pattern near or over the budget
    { n: 300, H: 2, s: 0.2, seed: 4 },
    { n: 50, H: 2, s: 0.5, seed: 5 }, // shorter than the forced diagonals
  ];
  for (const c of cases) {
    test(`count search picks the CPU method's counts: n=${c.n} H=${c.H} s=${c.s}`, () => {
      const estimates = randomEstimates(c.n, c.H, c.seed);
      const cpu = new ExposedVerticalSlash(256, c.s, null, null);
      const expected = cpu.choose(estimates, c.n);
      let probes = 0;
      const got = chooseVerticalSlashCounts(c.n, c.H, c.s, (kv, ks) => {
        probes++;
        return cpu.pairsOfLayer(estimates, c.n, kv, ks);
      });
      assert.deepEqual([got.verticalSize, got.slashSize], [expected.verticalSizes[0], expected.slashSizes[0]]);
      assert.equal(got.note, expected.note);
      assert.ok(probes <= 4 * Math.ceil(Math.log2(c.n + 1)) + 4, `${probes} probes`);
    });
  }

  // The kernel's reading of a sink-local layout (range keys up to the row, kept when below sinkCount
  // or at least the row's window start; listed columns) must give each row exactly the rule's keys.
  const rules: { rule: SinkLocalRule; queryStart: number; T: number }[] = [
    { rule: { sinkTokens: 4, localWindow: 100, sparsity: null }, queryStart: 0, T: 300 },
    { rule: { sinkTokens: 4, localWindow: null, sparsity: 0.8 }, queryStart: 0, T: 333 },
    { rule: { sinkTokens: 70, localWindow: 10, sparsity: null }, queryStart: 0, T: 200 }, // sinks wider than a block
    { rule: { sinkTokens: 4, localWindow: null, sparsity: 0.9 }, queryStart: 250, T: 130 }, // a later chunk
    { rule: { sinkTokens: 0, localWindow: 1, sparsity: null }, queryStart: 7, T: 65 },
  ];
  for (const { rule, queryStart, T } of rules) {
    test(`sink-local layout attends exactly the rule's keys: ${JSON.stringify(rule)} queryStart=${queryStart} T=${T}`, () => {
      const layout = sinkLocalLayout(rule, queryStart, T);
      const keys = new Int32Array(2);
      let pairs = 0;
      for (let t = 0; t < T; t++) {
        const p = queryStart + t, m = Math.floor(t / SINK_LOCAL_BLOCK);
        const got: number[] = [...layout.columns.subarray(layout.columnStart[m], layout.columnStart[m + 1])];
        for (let key = layout.ranges[2 * m]; key < layout.ranges[2 * m + 1]; key++) {
          if (key <= p && (key < rule.sinkTokens || key >= layout.rowLow[t])) got.push(key);
        }
        sinkLocalKeys(p, rule, keys);
        const want: number[] = [];
        for (let key = 0; key < keys[0]; key++) want.push(key);
        for (let key = keys[1]; key <= p; key++) want.push(key);
        assert.deepEqual(got.sort((a, b) => a - b), want, `query at ${p}`);
        assert.ok(got.every((key) => key <= p), `query at ${p}: a listed column right of the query`);
        pairs += want.length;
      }
      assert.equal(layout.pairs, pairs);
    });
  }
});

describe('verticalSlashKernelChoice (which attention kernel the GPU methods run)', () => {
  const hopper = { computeCapability: [9, 0] as [number, number], name: 'H100' };
  const ampere = { computeCapability: [8, 0] as [number, number], name: 'A100' };
  const tiling = { stages: 3 } as const;

  test('an explicit choice decides, on any device', () => {
    assert.deepEqual(verticalSlashKernelChoice(ampere, 128, { wgmma: { stages: 2 } }, tiling), { kernel: 'wgmma', tiling: { stages: 2 } });
    for (const mTiles of [1, 2] as const) {
      assert.deepEqual(verticalSlashKernelChoice(hopper, 128, mTiles, tiling), { kernel: 'mma', mTiles, reason: 'mma.sync row tiling given' });
    }
  });

  test('no choice: wgmma only with an auto tiling, on Hopper, at head dims 64 and 128', () => {
    for (const D of [64, 128]) assert.deepEqual(verticalSlashKernelChoice(hopper, D, undefined, tiling), { kernel: 'wgmma', tiling });
    const elsewhere = verticalSlashKernelChoice(ampere, 128, undefined, tiling);
    assert.equal(elsewhere.kernel, 'mma');
    assert.match(elsewhere.kernel === 'mma' ? elsewhere.reason : '', /compute capability 9\.0.*A100 is 8\.0/);
    const noAuto = verticalSlashKernelChoice(hopper, 128, undefined, null);
    assert.deepEqual(noAuto.kernel === 'mma' ? noAuto.mTiles : null, DEFAULT_VERTICAL_SLASH_ROW_TILES);
  });

  test('automatic choice per run: mma.sync only for a pairs-carrying index at long context and high sparsity', () => {
    const H = 4;
    const pairsAt = (T: number, queryStart: number, sparsity: number) =>
      new Float64Array(H).fill((1 - sparsity) * (T * queryStart + (T * (T + 1)) / 2));
    const n = 131072;
    assert.equal(autoRunsMma(n, 0, H, pairsAt(n, 0, 0.9)), true);
    assert.equal(autoRunsMma(n, 0, H, pairsAt(n, 0, AUTO_MMA_MIN_SPARSITY)), true);
    assert.equal(autoRunsMma(n, 0, H, pairsAt(n, 0, 0.8)), false);
    // Below the context bound, or with no exact pairs (sink + local's index), wgmma whatever the sparsity.
    assert.equal(autoRunsMma(65536, 0, H, pairsAt(65536, 0, 0.95)), false);
    assert.equal(autoRunsMma(AUTO_MMA_MIN_CONTEXT - 1, 0, H, pairsAt(AUTO_MMA_MIN_CONTEXT - 1, 0, 0.95)), false);
    assert.equal(autoRunsMma(n, 0, H, null), false);
    // A later chunk: the context is queryStart + T, the dense pairs those of its rows.
    assert.equal(autoRunsMma(1000, n, H, pairsAt(1000, n, 0.9)), true);
    assert.equal(autoRunsMma(1000, n, H, pairsAt(1000, n, 0.5)), false);
  });

  test('the shipped auto tiling is null or a valid wgmma tiling', () => {
    if (AUTO_VERTICAL_SLASH_WGMMA_TILING !== null) {
      assert.deepEqual(resolveVerticalSlashWgmmaTiling(AUTO_VERTICAL_SLASH_WGMMA_TILING), AUTO_VERTICAL_SLASH_WGMMA_TILING);
    }
    const d = verticalSlashKernelChoice(hopper, 128, undefined);
    assert.equal(d.kernel, AUTO_VERTICAL_SLASH_WGMMA_TILING === null ? 'mma' : 'wgmma');
  });
});

describe('batched count search options (CPU: checked before anything touches the device)', () => {
  // The constructor only records the runtime; no buffer is sized until a search runs.
  const rt = {} as unknown as CudaRuntime;
  test('refuses probeLevels outside [1, 5] and more probe rows than the batched kernel keeps', () => {
    assert.throws(() => new VerticalSlashCountSearch(rt, 2, { probeLevels: 0 }), /probeLevels must be an integer in \[1, 5\]/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 2, { probeLevels: 2.5 }), /probeLevels must be an integer/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 64, { probeLevels: 4 }), /15 probes x 128 score rows exceed/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 2, { probeLevels: 6 }), /probeLevels must be an integer in \[1, 5\]/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 32, { probeLevels: 5 }), /31 probes x 64 score rows exceed/);
    assert.equal(new VerticalSlashCountSearch(rt, 32, { probeLevels: 4 }).probeLevels, 4);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { probeLevels: 5 }).probeLevels, 5);
    assert.equal(new VerticalSlashCountSearch(rt, 4).probeLevels, null, 'one probe at a time by default');
    assert.deepEqual([1, 4, 16, 32, 34, 35, 64, 512, 513].map(maxProbeLevels), [5, 5, 5, 4, 4, 3, 3, 1, 0]);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { probeLevels: 'auto' }).probeLevels, 'auto');
  });

  test("'auto' takes the most levels whose probe slots fit the budget, at most 256 probe-heads a round", () => {
    assert.equal(AUTO_SLOT_BUDGET_BYTES, 256 * 2 ** 20);
    assert.equal(AUTO_MAX_PROBE_HEADS, 256);
    // The organism (H = 4): 15 probes (60 probe-heads; 31 would be 124, measured slower).
    assert.equal(autoProbeLevels(4, 16_384), 4);
    assert.equal(autoProbeLevels(16, 16_384), 4, '15 x 16 = 240');
    // Llama-8B (H = 32): 7 probes at 16K and 64K (224 probe-heads; 176 MB at 64K), 3 at 128K (151 MB).
    assert.equal(autoProbeLevels(32, 16_384), 3);
    assert.equal(autoProbeLevels(32, 65_536), 3);
    assert.equal(autoProbeLevels(32, 131_072), 2);
    assert.equal(autoProbeLevels(64, 16_384), 2, '3 x 64 = 192');
    // At least one level however long the prompt; none where the kernel takes no batch.
    assert.equal(autoProbeLevels(32, 2 ** 24), 1);
    assert.equal(autoProbeLevels(600, 1024), 0);
    assert.equal(autoProbeLevels(4, 16_384, 3 * 4 * 16_384 * 12), 2);
  });
});

describe('columnBitmapFits (when the count search runs its walk lanes with the column bitmap)', () => {
  test('the bitmap and its counts fit the stage up to n = 131,040; past it the plain batched kernel runs', () => {
    assert.equal(columnBitmapFits(16384), true);
    assert.equal(columnBitmapFits(131040), true);
    assert.equal(columnBitmapFits(131041), false);
    assert.equal(columnBitmapFits(131072), false);
  });
  test("the host's stage size is the kernel's STAGE_INTS", () => {
    const source = readFileSync(kernelSourcePath('vertical-slash-search.cu'), 'utf8');
    const stage = Number(/constexpr int STAGE_INTS = (\d+);/.exec(source)?.[1]);
    // 2 * ceil(n / 32) + 1 <= STAGE_INTS exactly at the boundary the first test pins
    assert.equal(2 * Math.ceil(131040 / 32) + 1 <= stage && 2 * Math.ceil(131041 / 32) + 1 > stage, true, `STAGE_INTS ${stage}`);
  });
});
