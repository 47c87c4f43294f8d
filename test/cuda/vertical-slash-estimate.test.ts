/**
 * The GPU Vertical-Slash importance estimate (src/backends/cuda/kernels/vertical-slash-estimate.ts):
 *   - against the CPU reference (src/methods/vertical-slash-pattern.ts lastQueryScores, float64) on
 *     the same bf16 inputs, every vertical and slash score (A = 1, A < n, A = n, n not a multiple of 64,
 *     GQA, D = 64 and 128);
 *   - bitwise identical across runs (issue 9): the diagonal sums were float atomicAdds whose order,
 *     hence rounding, changed from run to run; they are now 64-bit fixed point. Five runs of the same
 *     inputs, two of them on fresh estimators (other buffers from the pool, left over contents), at a
 *     small shape and at the bench's Llama-3.1-8B shape with FlexPrefill's A = 512.
 * Skipped where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DeviceBuffer } from '../../src/backends/cuda/memory-pool.js';
import { ModelOpsKernels } from '../../src/backends/cuda/kernels/model-ops.js';
import { type VerticalSlashScoreArgs, VerticalSlashEstimator } from '../../src/backends/cuda/kernels/vertical-slash-estimate.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { lastQueryScores } from '../../src/methods/vertical-slash-pattern.js';
import { randomBf16Values, randomGenerator } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA vertical-slash estimate tests');

/** fp32 scores, exp2.approx and one fixed-point rounding per lane sum vs float64: far inside this. */
const RELATIVE_TOLERANCE = 1e-3;
/** Entries far below a head's largest score may lose their last bits to fp32 sums; relative to that max. */
const ABSOLUTE_FLOOR = 1e-6;
const RUNS = 5;

interface Shape { n: number; H: number; Hkv: number; D: number; A: number }

interface ReferenceCase extends Shape { name: string; seed: number }

const REFERENCE_CASES: ReferenceCase[] = [
  { name: 'A < n, GQA 8/2, D=128', n: 1000, H: 8, Hkv: 2, D: 128, A: 256, seed: 31 },
  { name: 'A = n, n not a multiple of 64, D=64, no GQA', n: 333, H: 4, Hkv: 4, D: 64, A: 333, seed: 32 },
  { name: 'A = 1 (one scoring row)', n: 130, H: 2, Hkv: 1, D: 64, A: 1, seed: 33 },
  { name: 'A = 512 over many key tiles, GQA 4/1', n: 2100, H: 4, Hkv: 1, D: 128, A: 512, seed: 34 },
];

/** q [n, H·D] and k [Hkv, n, D] on the device (kvStride = n). */
interface DeviceInputs { q: DeviceBuffer; k: DeviceBuffer }

function scoreArgs(s: Shape, x: DeviceInputs): VerticalSlashScoreArgs {
  return { q: x.q.ptr, qRowStride: s.H * s.D, k: x.k.ptr, kvStride: s.n, n: s.n, approximation: s.A, scale: 1 / Math.sqrt(s.D) };
}

/** One estimate's [H, n] scores as raw fp32 bits (vertical, slash). */
function estimateBits(rt: CudaRuntime, estimator: VerticalSlashEstimator, s: Shape, x: DeviceInputs): { vertical: Uint32Array; slash: Uint32Array } {
  const scores = estimator.run(scoreArgs(s, x));
  rt.synchronize();
  const vertical = new Uint32Array(s.H * s.n), slash = new Uint32Array(s.H * s.n);
  rt.cuda.download(vertical, scores.vertical);
  rt.cuda.download(slash, scores.slash);
  return { vertical, slash };
}

function countDiffering(a: Uint32Array, b: Uint32Array): number {
  let c = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) c++;
  return c;
}

/** RUNS estimates of the same inputs (runs 3, 4 on fresh estimators): every bit equal to run 0's. */
function assertBitwiseRepeatable(rt: CudaRuntime, s: Shape, x: DeviceInputs, label: string): void {
  const shape = { numHeads: s.H, numKvHeads: s.Hkv, headDim: s.D };
  const shared = new VerticalSlashEstimator(rt, shape);
  try {
    const first = estimateBits(rt, shared, s, x);
    for (let run = 1; run < RUNS; run++) {
      const fresh = run >= 3 ? new VerticalSlashEstimator(rt, shape) : null;
      try {
        const got = estimateBits(rt, fresh ?? shared, s, x);
        const slashDiff = countDiffering(got.slash, first.slash), verticalDiff = countDiffering(got.vertical, first.vertical);
        console.log(`# ${label} run ${run} vs 0${fresh ? ' (fresh estimator)' : ''}: ${slashDiff} slash and ${verticalDiff} vertical scores of ${s.H * s.n} differ bitwise`);
        assert.equal(slashDiff, 0, `${label} run ${run}: slash scores differ bitwise from run 0`);
        assert.equal(verticalDiff, 0, `${label} run ${run}: vertical scores differ bitwise from run 0`);
      } finally {
        fresh?.release();
      }
    }
  } finally {
    shared.release();
  }
}

describe('CUDA vertical-slash estimate', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    console.log(`# device: ${rt.cuda.info.name} (${rt.cuda.info.arch}, ${rt.cuda.info.multiprocessors} SMs)`);
  });
  after(() => rt?.dispose());

  for (const c of REFERENCE_CASES) {
    test(`${c.name}: n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D} A=${c.A}: every score matches the float64 reference, runs are bitwise equal`, () => {
      const { n, H, Hkv, D, A } = c;
      const rand = randomGenerator(c.seed);
      const q = randomBf16Values(n * H * D, rand, 2); // [n, H, D]
      const k = randomBf16Values(Hkv * n * D, rand, 2); // [Hkv, n, D]
      const x = { q: uploadAsBf16(rt, q), k: uploadAsBf16(rt, k) };
      const estimator = new VerticalSlashEstimator(rt, { numHeads: H, numKvHeads: Hkv, headDim: D });
      try {
        const got = estimateBits(rt, estimator, c, x);
        const gotVertical = new Float32Array(got.vertical.buffer), gotSlash = new Float32Array(got.slash.buffer);
        const rows = [0, 1, 2, 3].map(() => new Float64Array(n));
        let worst = 0;
        for (let h = 0; h < H; h++) {
          const vertical = new Float64Array(n), slash = new Float64Array(n);
          const kv = Math.floor(h / (H / Hkv));
          lastQueryScores(q, n, H, D, h, k.subarray(kv * n * D, (kv + 1) * n * D), A, 1 / Math.sqrt(D), null, vertical, slash, rows);
          for (const [name, want, have] of [['vertical', vertical, gotVertical], ['slash', slash, gotSlash]] as const) {
            const floor = ABSOLUTE_FLOOR * want.reduce((m, v) => Math.max(m, v), 0);
            for (let i = 0; i < n; i++) {
              const err = Math.abs(have[h * n + i] - want[i]);
              worst = Math.max(worst, err / Math.max(want[i], floor));
              if (err > RELATIVE_TOLERANCE * want[i] + floor) {
                assert.fail(`head ${h} ${name}[${i}]: GPU ${have[h * n + i]} vs float64 ${want[i]}`);
              }
            }
          }
        }
        console.log(`#   worst relative error ${worst.toExponential(2)}`);
      } finally {
        estimator.release();
      }
      try {
        assertBitwiseRepeatable(rt, c, x, c.name);
      } finally {
        rt.pool.release(x.q);
        rt.pool.release(x.k);
      }
    });
  }

  test('the bench\'s Llama-3.1-8B shape (H=32 Hkv=8 D=128 n=16384, FlexPrefill A=512): the estimate is bitwise identical across runs', () => {
    const s: Shape = { n: 16_384, H: 32, Hkv: 8, D: 128, A: 512 };
    const ops = new ModelOpsKernels(rt);
    const x = { q: rt.pool.acquire(s.n * s.H * s.D * 2), k: rt.pool.acquire(s.Hkv * s.n * s.D * 2) };
    try {
      // As bench/vertical-slash-small-heads fills them (q seed 11, k seed 12).
      ops.fillUniform({ x: x.q.ptr, n: s.n * s.H * s.D, seed: 11, mean: 0, halfWidth: 1 });
      ops.fillUniform({ x: x.k.ptr, n: s.Hkv * s.n * s.D, seed: 12, mean: 0, halfWidth: 1 });
      assertBitwiseRepeatable(rt, s, x, 'Llama-8B shape');
    } finally {
      rt.synchronize();
      rt.pool.release(x.q);
      rt.pool.release(x.k);
    }
  });
});
