/**
 * Host-side helpers of the GPU Vertical-Slash method (CPU only): the range-slot offsets the index
 * kernels and the prefill kernel share, and the count search for a target sparsity, which must pick
 * exactly the counts the CPU method picks when its probes return the CPU's layer pairs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chooseVerticalSlashCounts } from '../../src/backends/cuda/vertical-slash-counts.js';
import { verticalSlashRangeOffset, verticalSlashRangeSlots } from '../../src/backends/cuda/vertical-slash-layout.js';
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
});
