/**
 * GPU correctness of the block-sparse flash prefill against the CPU Block-Sparse method: same
 * bf16-rounded inputs, the method's own chunk selection (converted by layoutFromSelection), the
 * method's float64 output as reference. Outputs are poisoned with NaN before each launch, so an
 * unwritten element fails. Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { type ChunkSelection, layoutFromSelection, layoutKeysOf } from '../../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../../src/backends/cuda/block-sparse-selection.js';
import {
  BlockSparseFlashPrefill, releaseBlockSparseLayout, uploadBlockSparseLayout,
} from '../../src/backends/cuda/kernels/block-sparse-prefill.js';
import { FlashPrefill } from '../../src/backends/cuda/kernels/flash-prefill.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../../src/backends/cuda/timing.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { BlockSparsePrefill } from '../../src/methods/block-sparse.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA block-sparse prefill tests skipped: ${skip}`);

// bf16 operands (and P rounded to bf16 before PV), as for the dense kernel.
const TOLERANCE = 1e-2;

interface Inputs {
  n: number; H: number; Hkv: number; D: number; kvStride: number;
  q: Float32Array; // [n, H, D]
  k: Float32Array; // [Hkv, kvStride, D]
  v: Float32Array; // [Hkv, kvStride, D]
}

function randomInputs(n: number, H: number, Hkv: number, D: number, extraRows: number, seed: number): Inputs {
  const rand = randomGenerator(seed);
  const kvStride = n + extraRows;
  return {
    n, H, Hkv, D, kvStride,
    q: randomBf16Values(n * H * D, rand, 2),
    k: randomBf16Values(Hkv * kvStride * D, rand, 2),
    v: randomBf16Values(Hkv * kvStride * D, rand),
  };
}

/** The engine's CPU cache of the same rows: append takes [n, Hkv, D]. */
function cpuCache(x: Inputs): LayerKvCache {
  const { n, Hkv, D, kvStride } = x;
  const kt = new Float32Array(n * Hkv * D), vt = new Float32Array(n * Hkv * D);
  for (let kvh = 0; kvh < Hkv; kvh++) {
    for (let r = 0; r < n; r++) {
      kt.set(x.k.subarray((kvh * kvStride + r) * D, (kvh * kvStride + r + 1) * D), (r * Hkv + kvh) * D);
      vt.set(x.v.subarray((kvh * kvStride + r) * D, (kvh * kvStride + r + 1) * D), (r * Hkv + kvh) * D);
    }
  }
  const cache = new LayerKvCache(Hkv, D, n);
  cache.append(kt, vt, n, 0);
  return cache;
}

describe('CUDA block-sparse prefill', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    console.log(`# device: ${rt.cuda.info.name} (${rt.cuda.info.arch}, ${rt.cuda.info.multiprocessors} SMs)`);
  });
  after(() => rt?.dispose());

  /** Runs the kernel over `sel` and returns [n, H, D]. */
  function runGpu(x: Inputs, sel: ChunkSelection): Float32Array {
    const { n, H, Hkv, D, kvStride } = x;
    const kernel = new BlockSparseFlashPrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D });
    const layout = uploadBlockSparseLayout(rt, layoutFromSelection(sel));
    const dq = uploadAsBf16(rt, x.q), dk = uploadAsBf16(rt, x.k), dv = uploadAsBf16(rt, x.v);
    const dout = poisonedBf16(rt, n * H * D);
    kernel.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, layout, numQueries: n, queryStart: 0, kvLen: n, kvStride, scale: 1 / Math.sqrt(D) });
    const out = downloadBf16(rt, dout, n * H * D);
    for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
    releaseBlockSparseLayout(rt, layout);
    return out;
  }

  const methodCases = [
    { n: 1000, H: 8, Hkv: 2, D: 128, chunk: 16, top: 8, extraRows: 0, seed: 1 },
    { n: 333, H: 4, Hkv: 4, D: 64, chunk: 16, top: 5, extraRows: 3, seed: 2 }, // partial last chunk, no GQA
    { n: 250, H: 6, Hkv: 2, D: 128, chunk: 16, top: 100, extraRows: 0, seed: 3 }, // t >= chunks: dense causal
    { n: 517, H: 4, Hkv: 1, D: 64, chunk: 32, top: 6, extraRows: 0, seed: 4 }, // c = 32 split into 16-row tiles
    { n: 2048, H: 4, Hkv: 2, D: 128, chunk: 16, top: 20, extraRows: 5, seed: 5 },
  ];
  for (const c of methodCases) {
    test(`n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D} c=${c.chunk} t=${c.top} vs the CPU method`, () => {
      const x = randomInputs(c.n, c.H, c.Hkv, c.D, c.extraRows, c.seed);
      const cache = cpuCache(x);
      const shape = { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D, scale: 1 / Math.sqrt(c.D), slidingWindow: null, logitSoftcap: null };
      const ref = new Float32Array(c.n * c.H * c.D);
      new BlockSparsePrefill(c.chunk, null, c.top).prefill({
        layer: 0, shape, queries: x.q, numQueries: c.n, queryStart: 0, cache, out: ref, isLastChunk: true,
      });
      const sel = selectBlockSparseChunks(
        new BlockSparsePrefill(c.chunk, null, c.top), x.q, cache.keys.map((k) => k.subarray(0, c.n * c.D)), c.n, c.H, c.D);
      const out = runGpu(x, sel);
      assert.equal(countNaN(out), 0, 'every output element must be written');
      const err = relativeError(out, ref);
      console.log(`#   rel err ${err.toExponential(2)}`);
      assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
    });
  }

  test('empty rows write zeros; other rows attend exactly their lists (hand-made selection)', () => {
    const x = randomInputs(90, 4, 2, 128, 0, 6);
    const B = Math.ceil(90 / 16);
    const heads = Array.from({ length: 4 }, (_, h) => {
      const selected = new Int32Array(B * B), counts = new Int32Array(B);
      for (let m = 0; m < B; m++) {
        if ((m + h) % 3 === 0) continue; // empty row
        let k = 0;
        for (let j = 0; j <= m; j++) if ((j * 7 + m + h) % 2 === 0 || j === m) selected[m * B + k++] = j;
        counts[m] = k;
      }
      return { selected, counts, stride: B };
    });
    const sel: ChunkSelection = { chunkSize: 16, numTokens: 90, heads };
    const layout = layoutFromSelection(sel);
    const { n, H, D, kvStride } = x;
    const scale = 1 / Math.sqrt(D);
    const ref = new Float32Array(n * H * D);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / 2);
      for (let t = 0; t < n; t++) {
        const keys = layoutKeysOf(layout, h, t);
        if (keys.length === 0) continue; // stays zero
        const s = keys.map((key) => {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += x.q[(t * H + h) * D + d] * x.k[(kvh * kvStride + key) * D + d];
          return dot * scale;
        });
        const mx = Math.max(...s);
        const w = s.map((y) => Math.exp(y - mx));
        const z = w.reduce((a, b) => a + b, 0);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          keys.forEach((key, i) => { acc += w[i] * x.v[(kvh * kvStride + key) * D + d]; });
          ref[(t * H + h) * D + d] = acc / z;
        }
      }
    }
    const out = runGpu(x, sel);
    assert.equal(countNaN(out), 0, 'every output element must be written');
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < n; t++) {
        if (layoutKeysOf(layout, h, t).length > 0) continue;
        for (let d = 0; d < D; d++) assert.equal(out[(t * H + h) * D + d], 0, `empty row: head ${h} query ${t}`);
      }
    }
    const err = relativeError(out, ref);
    console.log(`#   rel err ${err.toExponential(2)}`);
    assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
  });

  // Not a benchmark gate (nothing timed is asserted): one long-prompt shape, logged beside the dense
  // kernel so docs/perf.md can quote where the 16-row granularity stands. Random per-head selections
  // of t = 64 chunks (forced sink, previous and diagonal chunks plus 61 random earlier ones).
  test('long prompt: n=16384 H=32 Hkv=8 D=128 t=64, timed beside dense flash prefill', () => {
    const n = 16384, H = 32, Hkv = 8, D = 128, t = 64, c = 16;
    const rand = randomGenerator(99);
    const B = n / c;
    const heads = Array.from({ length: H }, () => {
      const selected = new Int32Array(B * t), counts = new Int32Array(B);
      for (let m = 0; m < B; m++) {
        const keep = new Set<number>([0, Math.max(0, m - 1), m]);
        while (keep.size < Math.min(t, m + 1)) keep.add(Math.floor(((rand() + 1) / 2) * (m + 1)) % (m + 1));
        const sorted = [...keep].sort((a, b) => a - b);
        selected.set(sorted, m * t);
        counts[m] = sorted.length;
      }
      return { selected, counts, stride: t };
    });
    const host = layoutFromSelection({ chunkSize: c, numTokens: n, heads });
    const q = randomBf16Values(n * H * D, rand, 2), k = randomBf16Values(Hkv * n * D, rand, 2), v = randomBf16Values(Hkv * n * D, rand);
    const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
    const sparse = new BlockSparseFlashPrefill(rt, shape), dense = new FlashPrefill(rt, shape);
    const layout = uploadBlockSparseLayout(rt, host);
    const dq = uploadAsBf16(rt, q), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
    const dout = poisonedBf16(rt, n * H * D);
    const common = { q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, numQueries: n, queryStart: 0, kvLen: n, kvStride: n, scale: 1 / Math.sqrt(D) };
    const ts = timeOnDevice(rt, () => sparse.run({ ...common, layout }), { warmup: 2, repeats: 5 });
    const out = downloadBf16(rt, dout, n * H * D);
    const td = timeOnDevice(rt, () => dense.run(common), { warmup: 2, repeats: 5 });
    for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
    releaseBlockSparseLayout(rt, layout);
    assert.equal(countNaN(out), 0, 'every output element must be written');
    let pairs = 0;
    for (let m = 0; m < B; m++) pairs += (Math.min(t, m + 1) - 1) * c * c + (c * (c + 1)) / 2;
    pairs *= H;
    const densePairs = H * (n * (n + 1)) / 2;
    const tflops = (p: number, ms: number): string => ((4 * p * D) / (ms * 1e-3) / 1e12).toFixed(0);
    console.log(`#   sparsity ${(1 - pairs / densePairs).toFixed(3)}: block-sparse ${ts.medianMs.toFixed(3)} ms (${tflops(pairs, ts.medianMs)} TFLOP/s on attended pairs), ` +
      `dense ${td.medianMs.toFixed(3)} ms (${tflops(densePairs, td.medianMs)} TFLOP/s), speed-up ${(td.medianMs / ts.medianMs).toFixed(2)}x`);
  });
});
