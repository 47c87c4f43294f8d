/**
 * GPU importance estimation of the Block-Sparse method (pooling, pooled scores, top-t selection)
 * against the CPU method's own selection (BlockSparsePrefill.selectChunks through
 * selectBlockSparseChunks): the device chunk lists must equal it entry for entry. Random bf16 inputs
 * have no score ties; one case builds exact ties on purpose (duplicate key chunks score identically
 * in float32 and float64) to check the tie rule (lower chunk first). Lists are poisoned before each
 * run. Skipped where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { selectionFromLists } from '../../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../../src/backends/cuda/block-sparse-selection.js';
import { BlockSparseEstimator } from '../../src/backends/cuda/kernels/block-sparse-estimate.js';
import { allocateChunkLists, downloadChunkLists, releaseChunkLists } from '../../src/backends/cuda/kernels/block-sparse-prefill.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { BlockSparsePrefill } from '../../src/methods/block-sparse.js';
import { randomBf16Values, randomGenerator } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA block-sparse estimation tests');

interface Case {
  n: number; H: number; Hkv: number; D: number; chunk: number; top: number | null; sparsity?: number;
  seed: number; qPad?: number; budget?: number; ties?: boolean;
}

describe('CUDA block-sparse estimation', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  const cases: Case[] = [
    { n: 1000, H: 8, Hkv: 2, D: 128, chunk: 16, top: 8, seed: 1 },
    { n: 333, H: 4, Hkv: 4, D: 64, chunk: 16, top: 5, seed: 2 }, // partial last chunk, no GQA
    { n: 250, H: 6, Hkv: 2, D: 128, chunk: 16, top: 100, seed: 3 }, // t >= chunks: every chunk
    { n: 517, H: 4, Hkv: 1, D: 64, chunk: 32, top: 6, seed: 4 },
    { n: 2048, H: 4, Hkv: 2, D: 128, chunk: 16, top: 3, seed: 5 }, // only the forced chunks
    { n: 4000, H: 4, Hkv: 2, D: 128, chunk: 16, top: null, sparsity: 0.9, seed: 6, qPad: 512 }, // t from sparsity; fused q rows
    { n: 1500, H: 8, Hkv: 2, D: 64, chunk: 16, top: 30, seed: 7, budget: 3 * 94 * 94 * 4 }, // 3 heads per score batch
    { n: 800, H: 4, Hkv: 2, D: 128, chunk: 16, top: 12, seed: 8, ties: true },
  ];
  for (const c of cases) {
    const label = `n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D} c=${c.chunk} ${c.top !== null ? `t=${c.top}` : `s=${c.sparsity}`}` +
      `${c.qPad ? ' fused q rows' : ''}${c.budget ? ' head batches' : ''}${c.ties ? ' exact ties' : ''}`;
    test(`${label}: GPU selection equals the CPU method's`, () => {
      const { n, H, Hkv, D, chunk } = c;
      const rand = randomGenerator(c.seed);
      const qRowStride = H * D + (c.qPad ?? 0);
      const qRows = randomBf16Values(n * qRowStride, rand, 2); // [n, qRowStride]: head h at h·D
      const keys = randomBf16Values(Hkv * n * D, rand, 2); // [Hkv, n, D]
      if (c.ties) {
        // Every odd key chunk copies chunk 1, so many candidates score exactly alike.
        for (let kvh = 0; kvh < Hkv; kvh++) {
          for (let r = 0; r < n; r++) {
            const j = Math.floor(r / chunk);
            if (j % 2 === 1 && j > 1) keys.copyWithin((kvh * n + r) * D, (kvh * n + chunk + (r % chunk)) * D, (kvh * n + chunk + (r % chunk) + 1) * D);
          }
        }
      }
      const queries = new Float32Array(n * H * D); // [n, H, D] for the CPU method
      for (let t = 0; t < n; t++) queries.set(qRows.subarray(t * qRowStride, t * qRowStride + H * D), t * H * D);
      const method = new BlockSparsePrefill(chunk, c.sparsity ?? null, c.top);
      const expected = selectBlockSparseChunks(method, queries, Array.from({ length: Hkv }, (_, h) => keys.subarray(h * n * D, (h + 1) * n * D)), n, H, D);
      const t = method.topChunksFor(n);

      const estimator = new BlockSparseEstimator(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, chunk, c.budget);
      const dq = uploadAsBf16(rt, qRows), dk = uploadAsBf16(rt, keys);
      const lists = allocateChunkLists(rt, H, n, chunk, t);
      rt.cuda.fill32Async(lists.lists.ptr, 0x7eadbeef, H * lists.numChunks * t, rt.stream);
      rt.cuda.fill32Async(lists.counts.ptr, 0x7eadbeef, H * lists.numChunks, rt.stream);
      estimator.run({ q: dq.ptr, qRowStride, k: dk.ptr, kvStride: n, numTokens: n, lists });
      const got = selectionFromLists(downloadChunkLists(rt, lists));
      for (const b of [dq, dk]) rt.pool.release(b);
      releaseChunkLists(rt, lists);
      estimator.release();

      let checkedRows = 0;
      for (let h = 0; h < H; h++) {
        const e = expected.heads[h], g = got.heads[h];
        for (let m = 0; m < lists.numChunks; m++) {
          assert.equal(g.counts[m], e.counts[m], `head ${h} chunk ${m}: count`);
          assert.deepEqual([...g.selected.subarray(m * g.stride, m * g.stride + g.counts[m])],
            [...e.selected.subarray(m * e.stride, m * e.stride + e.counts[m])], `head ${h} chunk ${m}: kept chunks`);
          checkedRows++;
        }
      }
      console.log(`#   t=${t}: ${checkedRows} chunk lists equal`);
    });
  }
});
