/**
 * Random inputs of the block-sparse prefill GPU tests (mma.sync and wgmma kernels) and the engine's CPU
 * cache holding the same rows, for the CPU method that serves as their reference, the float64
 * reference over an explicit selection, the CPU method's output and selection at a chunk size and top-t, the
 * hand-made selection with empty rows both kernels' tests use, and the selection of every causal chunk.
 */
import { type ChunkSelection, selectedKeysOf } from '../../src/backends/cuda/block-sparse-layout.js';
import assert from 'node:assert/strict';
import { selectBlockSparseChunks } from '../../src/backends/cuda/block-sparse-selection.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { BlockSparsePrefill } from '../../src/methods/block-sparse.js';
import { randomBf16Values, randomGenerator } from './helpers.js';

export interface BlockSparseInputs {
  n: number; H: number; Hkv: number; D: number; kvStride: number;
  q: Float32Array; // [n, H, D]
  k: Float32Array; // [Hkv, kvStride, D]
  v: Float32Array; // [Hkv, kvStride, D]
}

/** bf16-representable q, k, v; the cache has `extraRows` rows past the prompt (the kernel must not read them). */
export function randomBlockSparseInputs(n: number, H: number, Hkv: number, D: number, extraRows: number, seed: number): BlockSparseInputs {
  const rand = randomGenerator(seed);
  const kvStride = n + extraRows;
  return {
    n, H, Hkv, D, kvStride,
    q: randomBf16Values(n * H * D, rand, 2),
    k: randomBf16Values(Hkv * kvStride * D, rand, 2),
    v: randomBf16Values(Hkv * kvStride * D, rand),
  };
}

/** The engine's CPU cache of the same rows (append takes [n, Hkv, D]). */
export function cpuCacheOf(x: BlockSparseInputs): LayerKvCache {
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

/** Float64 softmax attention of every query over exactly the keys the selection gives it (zeros when none). */
export function selectionReference(x: BlockSparseInputs, sel: ChunkSelection): Float32Array {
  const { n, H, Hkv, D, kvStride } = x;
  const ref = new Float32Array(n * H * D);
  for (let h = 0; h < H; h++) {
    const kvh = Math.floor(h / (H / Hkv));
    for (let t = 0; t < n; t++) {
      const keys = selectedKeysOf(sel, h, t);
      if (keys.length === 0) continue;
      const o = (t * H + h) * D;
      const s = keys.map((key) => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += x.q[o + d] * x.k[(kvh * kvStride + key) * D + d];
        return dot / Math.sqrt(D);
      });
      const mx = Math.max(...s);
      const w = s.map((y) => Math.exp(y - mx));
      const z = w.reduce((a, b) => a + b, 0);
      keys.forEach((key, i) => {
        for (let d = 0; d < D; d++) ref[o + d] += (w[i] / z) * x.v[(kvh * kvStride + key) * D + d];
      });
    }
  }
  return ref;
}

/**
 * A fixed selection of 16-token chunks over n tokens and H heads: row m of head h is empty when
 * (m + h) % 3 === 0, otherwise it keeps the causal chunks j with (7j + m + h) even, and always its
 * diagonal chunk m. Returned fresh, so a test may empty more rows.
 */
export function handMadeEmptyRowSelection(n: number, H: number): ChunkSelection {
  const B = Math.ceil(n / 16);
  const heads = Array.from({ length: H }, (_, h) => {
    const selected = new Int32Array(B * B), counts = new Int32Array(B);
    for (let m = 0; m < B; m++) {
      if ((m + h) % 3 === 0) continue; // empty row
      let k = 0;
      for (let j = 0; j <= m; j++) if ((j * 7 + m + h) % 2 === 0 || j === m) selected[m * B + k++] = j;
      counts[m] = k;
    }
    return { selected, counts, stride: B };
  });
  return { chunkSize: 16, numTokens: n, heads };
}

/** Every query that the selection gives no key must come out as zeros. out: [n, H, D]. */
export function assertEmptyRowsAreZero(out: Float32Array, x: BlockSparseInputs, sel: ChunkSelection): void {
  const { n, H, D } = x;
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < n; t++) {
      if (selectedKeysOf(sel, h, t).length > 0) continue;
      for (let d = 0; d < D; d++) assert.equal(out[(t * H + h) * D + d], 0, `empty row: head ${h} query ${t}`);
    }
  }
}

/**
 * The CPU Block-Sparse method at chunk size `chunk` and `top` chunks a query chunk: its float64 output
 * (ref [n, H, D]) and the selection it made, which the GPU kernels get as their lists.
 */
export function cpuMethodReference(x: BlockSparseInputs, chunk: number, top: number): { ref: Float32Array; sel: ChunkSelection } {
  const { n, H, D } = x;
  const cache = cpuCacheOf(x);
  const shape = { numHeads: H, numKvHeads: x.Hkv, headDim: D, scale: 1 / Math.sqrt(D), slidingWindow: null, logitSoftcap: null };
  const ref = new Float32Array(n * H * D);
  new BlockSparsePrefill(chunk, null, top).prefill({ layer: 0, shape, queries: x.q, numQueries: n, queryStart: 0, cache, out: ref, isLastChunk: true });
  const sel = selectBlockSparseChunks(new BlockSparsePrefill(chunk, null, top), x.q, cache.keys.map((k) => k.subarray(0, n * D)), n, H, D);
  return { ref, sel };
}

/** Every causal chunk selected for every head (the bench's s = 0): a list covering everything. */
export function everyCausalChunk(n: number, H: number, chunkSize = 16): ChunkSelection {
  const B = Math.ceil(n / chunkSize);
  const heads = Array.from({ length: H }, () => {
    const selected = new Int32Array(B * B), counts = new Int32Array(B);
    for (let m = 0; m < B; m++) {
      for (let j = 0; j <= m; j++) selected[m * B + j] = j;
      counts[m] = m + 1;
    }
    return { selected, counts, stride: B };
  });
  return { chunkSize, numTokens: n, heads };
}
