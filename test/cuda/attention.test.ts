/**
 * GPU correctness of the attention kernels against the CPU reference (float64 accumulation on the
 * same bf16-rounded inputs). Outputs are poisoned with NaN before every launch, so an unwritten
 * element fails. Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import {
  DecodeAttentionKernel, type DecodeMerge, type DecodeTuning, decodeTuningLabel, decodeWorkspaceBytes,
} from '../../src/backends/cuda/kernels/decode-attention.js';
import { FlashPrefill, type PrefillTiling, tilingLabel } from '../../src/backends/cuda/kernels/flash-prefill.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { countNaN, randomBf16Values, randomGenerator, referenceAttention, referenceCausalAttention, relativeError } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA attention tests skipped: ${skip}`);

// bf16 operands (and P rounded to bf16 before PV): errors land between 1e-3 and 1e-2.
const TOLERANCE = 1e-2;

interface PrefillCase {
  T: number; H: number; Hkv: number; D: number; queryStart: number; extraRows: number; tiling: PrefillTiling; seed: number;
  window?: number;
}

const W4M1N64: PrefillTiling = { warps: 4, mTiles: 1, blockN: 64 };
const W8M1N64: PrefillTiling = { warps: 8, mTiles: 1, blockN: 64 };
const W4M2N64: PrefillTiling = { warps: 4, mTiles: 2, blockN: 64 };
const W4M2N32: PrefillTiling = { warps: 4, mTiles: 2, blockN: 32 };
const W8M2N32: PrefillTiling = { warps: 8, mTiles: 2, blockN: 32 };
const W4M1N32: PrefillTiling = { warps: 4, mTiles: 1, blockN: 32 };
const W8M2N64: PrefillTiling = { warps: 8, mTiles: 2, blockN: 64 };
const W4M2N64G: PrefillTiling = { warps: 4, mTiles: 2, blockN: 64, order: 'global' };
const W8M2N64G: PrefillTiling = { warps: 8, mTiles: 2, blockN: 64, order: 'global' };
// Tilings without an order inherit the launcher's default ('global'); v3's head-by-head order explicitly:
const W4M2N64H: PrefillTiling = { warps: 4, mTiles: 2, blockN: 64, order: 'head' };

const prefillCases: PrefillCase[] = [
  { T: 256, H: 8, Hkv: 2, D: 128, queryStart: 0, extraRows: 0, tiling: W4M1N64, seed: 1 },
  { T: 301, H: 4, Hkv: 1, D: 128, queryStart: 0, extraRows: 13, tiling: W8M1N64, seed: 2 }, // odd T, spare cache rows
  { T: 77, H: 6, Hkv: 3, D: 64, queryStart: 250, extraRows: 5, tiling: W4M1N64, seed: 3 }, // a later chunk of a prompt
  { T: 130, H: 4, Hkv: 4, D: 64, queryStart: 0, extraRows: 0, tiling: W4M2N64, seed: 4 }, // no GQA
  { T: 1000, H: 4, Hkv: 2, D: 128, queryStart: 24, extraRows: 0, tiling: W4M2N64H, seed: 5 },
  { T: 333, H: 8, Hkv: 2, D: 128, queryStart: 100, extraRows: 3, tiling: W4M2N32, seed: 6 },
  { T: 517, H: 4, Hkv: 1, D: 128, queryStart: 0, extraRows: 0, tiling: W8M2N32, seed: 7 },
  // Sliding windows (Gemma 3's local layers): narrower than a tile, unaligned, and after a prompt chunk.
  { T: 400, H: 8, Hkv: 4, D: 128, queryStart: 0, extraRows: 0, tiling: W4M2N64, seed: 8, window: 37 },
  { T: 300, H: 4, Hkv: 2, D: 64, queryStart: 700, extraRows: 0, tiling: W4M1N64, seed: 9, window: 512 },
  { T: 257, H: 4, Hkv: 1, D: 128, queryStart: 129, extraRows: 2, tiling: W4M2N32, seed: 10, window: 200 },
  // Block orders and 256-row blocks (the benchmark's variants): several heads, odd T, a later chunk.
  { T: 700, H: 8, Hkv: 2, D: 128, queryStart: 0, extraRows: 0, tiling: W8M2N64, seed: 13 },
  { T: 555, H: 6, Hkv: 2, D: 128, queryStart: 40, extraRows: 1, tiling: W4M2N64G, seed: 14 },
  { T: 600, H: 4, Hkv: 2, D: 64, queryStart: 0, extraRows: 0, tiling: W8M2N64G, seed: 15, window: 150 },
  // Head dim 256 (Gemma 3), global and local layers.
  { T: 333, H: 4, Hkv: 1, D: 256, queryStart: 0, extraRows: 0, tiling: W4M1N32, seed: 11 },
  { T: 150, H: 8, Hkv: 4, D: 256, queryStart: 300, extraRows: 1, tiling: W4M1N32, seed: 12, window: 128 },
];

describe('CUDA attention kernels', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    console.log(`# device: ${rt.cuda.info.name} (${rt.cuda.info.arch}, ${rt.cuda.info.multiprocessors} SMs)`);
  });
  after(() => rt?.dispose());

  for (const c of prefillCases) {
    const label = `T=${c.T} H=${c.H} Hkv=${c.Hkv} D=${c.D} start=${c.queryStart}${c.window ? ` window=${c.window}` : ''}`;
    test(`flash prefill ${label} ${tilingLabel(c.tiling)}`, () => {
      const rand = randomGenerator(c.seed);
      const kvLen = c.queryStart + c.T;
      const kvStride = kvLen + c.extraRows;
      const q = randomBf16Values(c.T * c.H * c.D, rand, 2);
      const k = randomBf16Values(c.Hkv * kvStride * c.D, rand, 2);
      const v = randomBf16Values(c.Hkv * kvStride * c.D, rand);
      const scale = 1 / Math.sqrt(c.D);
      const ref = referenceCausalAttention(q, k, v, c.T, c.H, c.Hkv, c.D, kvStride, c.queryStart, kvLen, scale, c.window ?? null);

      const kernel = new FlashPrefill(rt, { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D }, c.tiling);
      const dq = uploadAsBf16(rt, q), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
      const dout = poisonedBf16(rt, c.T * c.H * c.D);
      kernel.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, numQueries: c.T, queryStart: c.queryStart, kvLen, kvStride, scale, slidingWindow: c.window });
      const out = downloadBf16(rt, dout, c.T * c.H * c.D);
      for (const b of [dq, dk, dv, dout]) rt.pool.release(b);

      assert.equal(countNaN(out), 0, 'every output element must be written');
      const err = relativeError(out, ref);
      console.log(`#   rel err ${err.toExponential(2)}`);
      assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
    });
  }

  const decodeCases = [
    { H: 32, Hkv: 8, D: 128, kvLen: 5000, extraRows: 100, seed: 11 },
    { H: 8, Hkv: 8, D: 64, kvLen: 777, extraRows: 0, seed: 12 },
    { H: 16, Hkv: 2, D: 128, kvLen: 33, extraRows: 7, seed: 13 },
    { H: 28, Hkv: 4, D: 128, kvLen: 40_000, extraRows: 0, seed: 14 },
    { H: 64, Hkv: 8, D: 128, kvLen: 3001, extraRows: 1, seed: 15 }, // group of 8
    { H: 4, Hkv: 4, D: 128, kvLen: 1, extraRows: 0, seed: 16 }, // the first token
    { H: 8, Hkv: 4, D: 256, kvLen: 2049, extraRows: 0, seed: 17 }, // Gemma 3 head dim
  ];
  // Every way of merging the splits (two second kernels, last block, last GROUP blocks, thread-block
  // clusters through distributed shared memory: 16 blocks of 256 threads per KV head) on every shape.
  const merges: DecodeMerge[] = ['combine', 'fold', 'last-block', 'per-head', 'cluster'];
  for (const c of decodeCases) {
    test(`decode attention H=${c.H} Hkv=${c.Hkv} D=${c.D} n=${c.kvLen} (merges ${merges.join(', ')})`, () => {
      const rand = randomGenerator(c.seed);
      const kvStride = c.kvLen + c.extraRows;
      const q = randomBf16Values(c.H * c.D, rand, 2);
      const k = randomBf16Values(c.Hkv * kvStride * c.D, rand, 2);
      const v = randomBf16Values(c.Hkv * kvStride * c.D, rand);
      const scale = 1 / Math.sqrt(c.D);
      // One query at position kvLen - 1 sees every valid row.
      const ref = referenceCausalAttention(q, k, v, 1, c.H, c.Hkv, c.D, kvStride, c.kvLen - 1, c.kvLen, scale);

      const shape = { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D };
      const dq = uploadAsBf16(rt, q), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
      const dout = poisonedBf16(rt, c.H * c.D);
      try {
        for (const merge of merges) {
          const kernel = new DecodeAttentionKernel(rt, shape, { merge });
          rt.cuda.fill16Async(dout.ptr, 0x7fc0, c.H * c.D, rt.stream);
          const plan = kernel.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, kvLen: c.kvLen, kvStride, scale });
          const out = downloadBf16(rt, dout, c.H * c.D);
          assert.deepEqual(plan, kernel.plan(c.kvLen));
          assert.equal(countNaN(out), 0, `${merge}: every output element must be written`);
          const err = relativeError(out, ref);
          console.log(`#   ${merge}: ${plan.splits} splits of ${plan.chunk}: rel err ${err.toExponential(2)}`);
          assert.ok(err < TOLERANCE, `${merge}: relative error ${err} over ${TOLERANCE}`);
        }
      } finally {
        for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
      }
    });
  }
  test('decode attention with a sliding window and with per-head lengths', () => {
    const H = 16, Hkv = 4, D = 128, kvLen = 3000, kvStride = 3100, scale = 1 / Math.sqrt(D);
    const rand = randomGenerator(21);
    const q = randomBf16Values(H * D, rand, 2);
    const k = randomBf16Values(Hkv * kvStride * D, rand, 2);
    const v = randomBf16Values(Hkv * kvStride * D, rand);
    const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
    const dq = uploadAsBf16(rt, q), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
    const window = 1000;
    const refWindow = referenceAttention(q, k, v, 1, H, Hkv, D, kvStride, scale, () => [kvLen - window, kvLen]);
    const lengths = Int32Array.from([3000, 1, 1777, 64]);
    const refLengths = referenceAttention(q, k, v, 1, H, Hkv, D, kvStride, scale, (_t, kvh) => [0, lengths[kvh]]);
    for (const merge of merges) {
    const kernel = new DecodeAttentionKernel(rt, shape, { merge });

    const out1 = poisonedBf16(rt, H * D);
    kernel.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: out1.ptr, kvLen, kvStride, scale, slidingWindow: window });
    const got1 = downloadBf16(rt, out1, H * D);

    const dlen = rt.pool.acquire(lengths.byteLength);
    rt.cuda.upload(dlen.ptr, lengths);
    const out2 = poisonedBf16(rt, H * D);
    kernel.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: out2.ptr, kvLen, kvStride, scale, headLengths: dlen.ptr });
    const got2 = downloadBf16(rt, out2, H * D);
    assert.throws(() => kernel.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: out2.ptr, kvLen, kvStride, scale, slidingWindow: 5, headLengths: dlen.ptr }),
      /not supported/);
    for (const b of [out1, out2, dlen]) rt.pool.release(b);

    assert.equal(countNaN(got1) + countNaN(got2), 0, `${merge}: every output element must be written`);
    assert.ok(relativeError(got1, refWindow) < TOLERANCE, `${merge} window: rel err ${relativeError(got1, refWindow)}`);
    assert.ok(relativeError(got2, refLengths) < TOLERANCE, `${merge} per-head lengths: rel err ${relativeError(got2, refLengths)}`);
    }
    for (const b of [dq, dk, dv]) rt.pool.release(b);
  });

  // Every tuning the benchmark times computes the same function (different split layouts and loops).
  const tunings: DecodeTuning[] = [
    { threads: 128, unroll: 2, wave: 1, merge: 'combine' },
    { threads: 256, unroll: 2, wave: 1, merge: 'combine' },
    { threads: 256, unroll: 4, wave: 0.5, merge: 'combine' },
    { threads: 128, unroll: 4, wave: 0.25, merge: 'combine' },
    { threads: 128, unroll: 2, wave: 1, merge: 'fold' },
    { threads: 256, unroll: 2, wave: 1, merge: 'fold', pdl: true },
    { threads: 128, unroll: 2, wave: 1, merge: 'last-block' },
    { threads: 256, unroll: 2, wave: 2, merge: 'last-block' },
    { threads: 128, unroll: 2, wave: 1, merge: 'per-head' },
    { threads: 256, unroll: 4, wave: 0.5, merge: 'per-head' },
    // v7's bulk-copy ring (one block per SM at 8 stages; 128 threads; 48 KB of stages plus its barriers).
    { threads: 256, unroll: 2, wave: 1, merge: 'fold', stages: 4 },
    { threads: 256, unroll: 2, wave: 1, merge: 'fold', stages: 8 },
    { threads: 128, unroll: 4, wave: 1, merge: 'combine', stages: 3 },
    { threads: 256, unroll: 2, wave: 1, merge: 'last-block', stages: 6 },
    // v8's clusters: one per KV head (16 blocks of 512 threads; 4 of 256 x 4 rows), or one per half
    // of its query heads (subsets 2), 16 or 8 blocks each.
    { threads: 512, unroll: 2, wave: 1, merge: 'cluster', cluster: 16 },
    { threads: 256, unroll: 2, wave: 1, merge: 'cluster', cluster: 16, subsets: 2 },
    { threads: 512, unroll: 2, wave: 1, merge: 'cluster', cluster: 8, subsets: 2 },
    { threads: 256, unroll: 4, wave: 1, merge: 'cluster', cluster: 4 },
  ];
  for (const tuning of tunings) {
    test(`decode attention tuning ${decodeTuningLabel(tuning)} (D 128 and 64, window)`, () => {
      for (const c of [{ H: 32, Hkv: 8, D: 128, kvLen: 9000, window: null }, { H: 16, Hkv: 2, D: 64, kvLen: 1500, window: 333 }]) {
        const rand = randomGenerator(31 + c.kvLen);
        const q = randomBf16Values(c.H * c.D, rand, 2);
        const k = randomBf16Values(c.Hkv * c.kvLen * c.D, rand, 2);
        const v = randomBf16Values(c.Hkv * c.kvLen * c.D, rand);
        const scale = 1 / Math.sqrt(c.D);
        const lo = c.window === null ? 0 : c.kvLen - c.window;
        const ref = referenceAttention(q, k, v, 1, c.H, c.Hkv, c.D, c.kvLen, scale, () => [lo, c.kvLen]);
        const kernel = new DecodeAttentionKernel(rt, { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D }, tuning);
        const dq = uploadAsBf16(rt, q), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
        const dout = poisonedBf16(rt, c.H * c.D);
        const plan = kernel.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, kvLen: c.kvLen, kvStride: c.kvLen, scale, slidingWindow: c.window });
        const out = downloadBf16(rt, dout, c.H * c.D);
        for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
        assert.equal(countNaN(out), 0, 'every output element must be written');
        const err = relativeError(out, ref);
        console.log(`#   D=${c.D} ${plan.splits} splits of ${plan.chunk}: rel err ${err.toExponential(2)}`);
        assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
      }
    });
  }

  test('decode attention with the length read on the device, replayed from one captured graph', () => {
    const H = 16, Hkv = 4, D = 128, capacity = 6000, scale = 1 / Math.sqrt(D);
    const rand = randomGenerator(41);
    const q = randomBf16Values(H * D, rand, 2);
    const k = randomBf16Values(Hkv * capacity * D, rand, 2);
    const v = randomBf16Values(Hkv * capacity * D, rand);
    const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
    const dq = uploadAsBf16(rt, q), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
    const position = rt.pool.acquire(16);
    // The in-kernel merges reset their ticket counters themselves: consecutive replays must all merge.
    // The bulk-copy ring (v7) derives its chunks from the length read too.
    // Clusters (v8) derive their chunks from the length read as well, and hold no state between replays.
    const graphTunings: Partial<DecodeTuning>[] = [...merges.map((merge) => ({ merge })), { merge: 'fold', stages: 4 },
      { merge: 'cluster', threads: 512, cluster: 16 }, { merge: 'cluster', threads: 512, cluster: 8, subsets: 2 }];
    for (const tuning of graphTunings) for (const window of [null, 700]) {
      const merge = `${tuning.merge}${tuning.stages ? ` ring ${tuning.stages}` : ''}${tuning.threads ? ` t${tuning.threads}` : ''}` +
        `${tuning.cluster ? ` k${tuning.cluster}` : ''}${tuning.subsets ? ` s${tuning.subsets}` : ''}`;
      const kernel = new DecodeAttentionKernel(rt, shape, tuning);
      const splits = kernel.planForCapacity(capacity, window);
      const workspace = rt.pool.acquire(decodeWorkspaceBytes(shape, splits));
      const dout = poisonedBf16(rt, H * D);
      rt.synchronize();
      const graph = rt.cuda.captureGraph(rt.stream, () => kernel.runDeviceLength({
        q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, lengthFrom: position.ptr, lengthOffset: 1, kvStride: capacity, scale,
        slidingWindow: window, splits, workspace: workspace.ptr,
      }));
      try {
        // The first token, a length shorter than one split's loop step, one not a multiple of anything, the whole cache.
        for (const kvLen of [1, 45, 4321, capacity]) {
          rt.cuda.fill16Async(dout.ptr, 0x7fc0, H * D, rt.stream);
          rt.synchronize();
          rt.cuda.upload(position.ptr, Int32Array.of(kvLen - 1));
          rt.cuda.launchGraph(graph, rt.stream);
          const out = downloadBf16(rt, dout, H * D);
          const lo = window === null ? 0 : Math.max(0, kvLen - window);
          const ref = referenceAttention(q, k, v, 1, H, Hkv, D, capacity, scale, () => [lo, kvLen]);
          assert.equal(countNaN(out), 0, `${merge} n=${kvLen}: every output element must be written`);
          const err = relativeError(out, ref);
          console.log(`#   ${merge} window ${window} n=${kvLen}, ${splits} splits: rel err ${err.toExponential(2)}`);
          assert.ok(err < TOLERANCE, `${merge} window ${window} n=${kvLen}: relative error ${err} over ${TOLERANCE}`);
        }
      } finally {
        rt.synchronize();
        rt.cuda.destroyGraph(graph);
      }
      rt.pool.release(workspace);
      rt.pool.release(dout);
    }
    for (const b of [dq, dk, dv, position]) rt.pool.release(b);
  });

  test('decode merge per-head refuses a grid of more than one wave (its mergers wait for the last block)', () => {
    const shape = { numHeads: 32, numKvHeads: 8, headDim: 128 };
    const kernel = new DecodeAttentionKernel(rt, shape, { merge: 'per-head', wave: 2 });
    const dq = rt.pool.acquire(32 * 128 * 2), dk = rt.pool.acquire(8 * 65536 * 128 * 2), dout = rt.pool.acquire(32 * 128 * 2);
    try {
      assert.throws(() => kernel.run({ q: dq.ptr, k: dk.ptr, v: dk.ptr, out: dout.ptr, kvLen: 65536, kvStride: 65536, scale: 0.1 }), /one wave/);
    } finally {
      for (const b of [dq, dk, dout]) rt.pool.release(b);
    }
  });

  test('decode merge cluster: refuses bad cluster tunings, plans its fixed split count', () => {
    const shape = { numHeads: 32, numKvHeads: 8, headDim: 128 };
    assert.throws(() => new DecodeAttentionKernel(rt, shape, { merge: 'cluster', cluster: 32 }), /cluster must be/);
    assert.throws(() => new DecodeAttentionKernel(rt, shape, { merge: 'cluster', subsets: 3 }), /subsets must/);
    assert.throws(() => new DecodeAttentionKernel(rt, shape, { merge: 'cluster', stages: 4 }), /neither a bulk-copy ring/);
    assert.throws(() => new DecodeAttentionKernel(rt, shape, { threads: 512 }), /only with merge 'cluster'/);
    // 8 heads per block would spill at 512 threads: the launcher takes 256.
    assert.equal(new DecodeAttentionKernel(rt, { numHeads: 64, numKvHeads: 8, headDim: 128 }, { merge: 'cluster', threads: 512 }).tuning.threads, 256);
    const kernel = new DecodeAttentionKernel(rt, shape, { merge: 'cluster', threads: 512, cluster: 16 });
    // 64 rows per step (32 slots x 2): 8192 rows in 16 splits of 512, 1 row in 16 splits of one step (15 empty).
    assert.deepEqual(kernel.plan(8192), { chunk: 512, splits: 16 });
    assert.deepEqual(kernel.plan(1), { chunk: 64, splits: 16 });
    assert.deepEqual(kernel.plan(8193), { chunk: 576, splits: 16 });
    assert.equal(kernel.planForCapacity(100_000), 16);
    const occupancy = kernel.clusterOccupancy();
    console.log(`#   16 blocks of 512 threads: ${occupancy?.resident} clusters resident, ${occupancy?.launched} launched`);
    assert.ok(occupancy !== null && occupancy.resident >= 1 && occupancy.launched === 8);
  });
});
