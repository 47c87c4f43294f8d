/**
 * FlexPrefill's budget rule on the device (kernels/flexprefill-coverage.cu) against the CPU method's
 * own functions on the same fp32 scores: the coverage curves must equal sortedPrefixSumsOfFloat32
 * bit for bit (NaN, ±0, infinities, subnormals, negatives, ties, rows shorter than a tile and longer
 * than several), and the per-head counts must equal coverCount with the method's clamps for every
 * alpha and min_budget tried. Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FlexPrefillCoverage } from '../../src/backends/cuda/kernels/flexprefill-coverage.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { coverCount, sortedPrefixSumsOfFloat32 } from '../../src/methods/flexprefill.js';
import { FORCED_COLUMNS, FORCED_DIAGONALS } from '../../src/methods/vertical-slash-prefill.js';
import { randomGenerator } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA FlexPrefill coverage tests');

/** Softmax-like scores: a few heavy entries, many near-equal ones, and exact ties (quantised). */
function attentionLikeRow(n: number, rand: () => number): Float32Array {
  const row = new Float32Array(n);
  let total = 0;
  for (let j = 0; j < n; j++) {
    const heavy = rand() < 0.01 ? 200 * rand() : 1;
    row[j] = Math.round(heavy * Math.exp(2 * rand()) * 64) / 64;
    total += row[j];
  }
  for (let j = 0; j < n; j++) row[j] /= total;
  return row;
}

/** Values a sort must place exactly: NaN, ±0, ±infinity, subnormals, negatives, repeats. */
function specialRow(n: number, rand: () => number): Float32Array {
  const specials = [Number.NaN, 0, -0, Infinity, -Infinity, 1e-45, -1e-45, 1e-40, 3.4e38, -2.5, 0.25, 0.25];
  const row = new Float32Array(n);
  for (let j = 0; j < n; j++) row[j] = rand() < 0.2 ? specials[Math.floor(rand() * specials.length)] : rand() - 0.3;
  return row;
}

/** The CPU method's per-head size (FlexPrefillPrefill.sizesFor) from one curve. */
function cpuSize(curve: Float64Array, n: number, alpha: number, minBudget: number, forced: number): number {
  return Math.max(Math.min(forced, n), Math.min(n, Math.max(minBudget, coverCount(curve, n, alpha))));
}

function sameBits(got: Float64Array, want: Float64Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${what}: element ${i} is ${got[i]}, the CPU's ${want[i]}`);
  }
}

describe('CUDA FlexPrefill coverage rule vs the CPU functions', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  const cases = [
    { name: 'attention-like rows, one partial tile', n: 1000, H: 3, A: 512, make: attentionLikeRow, seed: 1 },
    { name: 'attention-like rows over several tiles, A not a power of two', n: 20_011, H: 2, A: 300, make: attentionLikeRow, seed: 2 },
    { name: 'special values (NaN, ±0, ±inf, subnormals, negatives)', n: 9000, H: 2, A: 512, make: specialRow, seed: 3 },
    { name: 'one key', n: 1, H: 2, A: 1, make: attentionLikeRow, seed: 4 },
    { name: 'n = 64 (fewer keys than forced diagonals + min budget)', n: 64, H: 4, A: 64, make: attentionLikeRow, seed: 5 },
  ];

  for (const c of cases) {
    test(`${c.name}: n=${c.n} H=${c.H}`, () => {
      const rand = randomGenerator(c.seed);
      const vertical = new Float32Array(c.H * c.n), slash = new Float32Array(c.H * c.n);
      for (let h = 0; h < c.H; h++) {
        vertical.set(c.make(c.n, rand), h * c.n);
        slash.set(c.make(c.n, rand), h * c.n);
      }
      const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
      rt.cuda.upload(dv.ptr, vertical);
      rt.cuda.upload(ds.ptr, slash);
      const coverage = new FlexPrefillCoverage(rt, c.H);
      try {
        const scale = 1 / c.A;
        coverage.build({ n: c.n, vertical: dv.ptr, slash: ds.ptr }, scale);
        const curves = coverage.downloadCurves();
        const cpuCurves = [...Array(c.H).keys()].map((h) => sortedPrefixSumsOfFloat32(vertical.subarray(h * c.n, (h + 1) * c.n), scale))
          .concat([...Array(c.H).keys()].map((h) => sortedPrefixSumsOfFloat32(slash.subarray(h * c.n, (h + 1) * c.n), scale)));
        cpuCurves.forEach((want, r) => sameBits(curves[r], want, `row ${r} (${r < c.H ? 'columns' : 'diagonals'} of head ${r % c.H})`));

        for (const alpha of [0, 0.1, 0.5, 0.65, 0.9, 0.999, 1, 1.5]) {
          for (const minBudget of [1, 16, 512]) {
            const got = coverage.sizes(alpha, minBudget);
            for (let h = 0; h < c.H; h++) {
              assert.equal(got.vertical[h], cpuSize(cpuCurves[h], c.n, alpha, minBudget, FORCED_COLUMNS), `alpha ${alpha} min ${minBudget} head ${h}: columns`);
              assert.equal(got.slash[h], cpuSize(cpuCurves[c.H + h], c.n, alpha, minBudget, FORCED_DIAGONALS), `alpha ${alpha} min ${minBudget} head ${h}: diagonals`);
            }
          }
        }
      } finally {
        coverage.release();
        rt.pool.release(dv);
        rt.pool.release(ds);
      }
    });
  }

  test('refuses sizes before any build and a non-positive scale', () => {
    const coverage = new FlexPrefillCoverage(rt, 2);
    assert.throws(() => coverage.sizes(0.5, 16), /before build/);
    assert.throws(() => coverage.build({ n: 10, vertical: 0n, slash: 0n }, 0), /scale must be positive/);
  });
});
