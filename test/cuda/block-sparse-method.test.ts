/**
 * The GPU Block-Sparse prefill method (blockSparseDeviceFactory) end to end against the CPU method
 * (src/methods/block-sparse.ts) on the same bf16 inputs: queries inside fused qkv rows, K/V appended to
 * a DeviceLayerKvCache from those rows, as the model hands them over. Same selection (device lists
 * read back), outputs within bf16 tolerance (poisoned with NaN first), identical per-head pair counts,
 * estimation time measured. Skipped where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { selectionFromLists } from '../../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../../src/backends/cuda/block-sparse-selection.js';
import { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import { blockSparseDeviceFactory } from '../../src/backends/cuda/methods/block-sparse.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { BlockSparsePrefill } from '../../src/methods/block-sparse.js';
import { tinyConfig } from '../engine/model-fixtures.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA block-sparse method tests');

describe('CUDA Block-Sparse prefill method', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  const cases = [
    { n: 1200, H: 8, Hkv: 2, D: 128, params: {}, sparsity: 0.7, seed: 1 }, // defaults: c = 16, t from s
    { n: 777, H: 4, Hkv: 4, D: 64, params: { topChunks: 9 }, sparsity: undefined, seed: 2 },
    { n: 640, H: 4, Hkv: 1, D: 128, params: { chunkSize: 32, topChunks: 5 }, sparsity: undefined, seed: 3 },
    { n: 300, H: 4, Hkv: 2, D: 128, params: {}, sparsity: 0, seed: 4 }, // s = 0: every chunk, dense
  ];
  for (const c of cases) {
    test(`n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D} ${JSON.stringify(c.params)} s=${c.sparsity}: same selection, output and counts as the CPU method`, () => {
      const { n, H, Hkv, D } = c;
      const rand = randomGenerator(c.seed);
      const width = (H + 2 * Hkv) * D;
      const rows = randomBf16Values(n * width, rand, 2); // fused [n, (H + 2·Hkv)·D]: q | k | v
      const config = tinyConfig('llama', { numHeads: H, numKvHeads: Hkv, headDim: D });
      assert.equal(blockSparseDeviceFactory.unsupported(config), null);
      const method = blockSparseDeviceFactory.create(rt, config, { sparsity: c.sparsity, params: c.params });

      const drows = uploadAsBf16(rt, rows);
      const cache = new DeviceLayerKvCache(rt, Hkv, D, n + 8);
      cache.appendTokens({ k: drows.ptr + BigInt(H * D * 2), v: drows.ptr + BigInt((H + Hkv) * D * 2), rowStride: width }, n);
      const dout = poisonedBf16(rt, n * H * D);
      const shape = { numHeads: H, numKvHeads: Hkv, headDim: D, scale: 1 / Math.sqrt(D) };
      const counts = method.prefill({ layer: 0, shape, q: drows.ptr, qRowStride: width, numQueries: n, queryStart: 0, cache, out: dout.ptr, isLastChunk: true });
      const out = downloadBf16(rt, dout, n * H * D);
      const gpuSel = selectionFromLists(method.downloadLastLists());
      const ms = method.lastEstimationMs();
      method.reset();
      cache.release();
      for (const b of [drows, dout]) rt.pool.release(b);

      // The CPU method on the same values.
      const q = new Float32Array(n * H * D), k = new Float32Array(n * Hkv * D), v = new Float32Array(n * Hkv * D);
      for (let t = 0; t < n; t++) {
        q.set(rows.subarray(t * width, t * width + H * D), t * H * D);
        k.set(rows.subarray(t * width + H * D, t * width + (H + Hkv) * D), t * Hkv * D);
        v.set(rows.subarray(t * width + (H + Hkv) * D, (t + 1) * width), t * Hkv * D);
      }
      const cpuCache = new LayerKvCache(Hkv, D, n);
      cpuCache.append(k, v, n, 0);
      const chunkSize = (c.params as { chunkSize?: number }).chunkSize ?? 16;
      const topChunks = (c.params as { topChunks?: number }).topChunks ?? null;
      const cpu = new BlockSparsePrefill(chunkSize, c.sparsity ?? null, topChunks);
      const ref = new Float32Array(n * H * D);
      const cpuCounts = cpu.prefill({
        layer: 0, shape: { ...shape, slidingWindow: null, logitSoftcap: null }, queries: q, numQueries: n, queryStart: 0, cache: cpuCache, out: ref, isLastChunk: true,
      });
      const cpuSel = selectBlockSparseChunks(cpu, q, cpuCache.keys.map((x) => x.subarray(0, n * D)), n, H, D);

      for (let h = 0; h < H; h++) {
        const a = gpuSel.heads[h], b = cpuSel.heads[h];
        for (let m = 0; m < Math.ceil(n / chunkSize); m++) {
          assert.deepEqual([...a.selected.subarray(m * a.stride, m * a.stride + a.counts[m])],
            [...b.selected.subarray(m * b.stride, m * b.stride + b.counts[m])], `head ${h} chunk ${m}`);
        }
      }
      assert.deepEqual([...counts.attended], [...cpuCounts.attended], 'attended pairs per head');
      assert.deepEqual([...counts.dense], [...cpuCounts.dense], 'dense pairs per head');
      assert.equal(countNaN(out), 0, 'every output element must be written');
      const err = relativeError(out, ref);
      assert.ok(err < 1e-2, `relative error ${err}`);
      assert.ok(ms !== null && Number.isFinite(ms) && ms >= 0, `estimation time ${ms}`);
      console.log(`#   rel err ${err.toExponential(2)}, sparsity ${(1 - counts.attended[0] / counts.dense[0]).toFixed(3)}, estimation ${ms?.toFixed(3)} ms`);
    });
  }

  test('a chunk size the kernel cannot tile is refused', () => {
    assert.throws(() => blockSparseDeviceFactory.create(rt, tinyConfig('llama', { headDim: 128 }), { params: { chunkSize: 24 } }), /multiple of 16/);
  });
});

describe('Block-Sparse GPU factory (host side)', () => {
  test('refuses the shapes it cannot run, naming the reason', () => {
    assert.equal(blockSparseDeviceFactory.methodId, 'block_sparse');
    assert.equal(blockSparseDeviceFactory.unsupported(tinyConfig('llama', { headDim: 128 })), null);
    assert.match(blockSparseDeviceFactory.unsupported(tinyConfig('llama', { headDim: 256 })) ?? '', /head dim 256/);
    assert.match(blockSparseDeviceFactory.unsupported(tinyConfig('llama', { headDim: 128, attnLogitSoftcap: 50 })) ?? '', /soft-capping/);
  });
});
