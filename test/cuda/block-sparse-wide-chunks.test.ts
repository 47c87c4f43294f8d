/**
 * Block-Sparse with 64-row chunks on the GPU (session 8): the launcher's automatic tilings with lean
 * masks (autoLeanMask) against the CPU method and bit for bit against the same launcher without them, on
 * both automatic tilings (128-row CTAs for dense-ish lists on a small grid, 192-row CTAs for sparse
 * lists), and the per-tiling default (AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS); c = 16 lists keep the plain
 * kernels under the option; and the method end to end at chunkSize 64 (the GPU estimation's lists equal
 * the CPU selection at c = 64, counts equal). Skipped where there is no
 * CUDA device, the wgmma cases where the device has no wgmma.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ChunkSelection, packChunkLists, selectionFromLists } from '../../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../../src/backends/cuda/block-sparse-selection.js';
import {
  AUTO_BLOCK_SPARSE_WGMMA_TILING, AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS, AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING, BlockSparseFlashPrefill,
  type BlockSparseKernelOptions, leanMaskVariant, releaseChunkLists, uploadChunkLists,
} from '../../src/backends/cuda/kernels/block-sparse-prefill.js';
import { wgmmaPrefillUnsupported } from '../../src/backends/cuda/kernels/flash-prefill-wgmma.js';
import { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import { blockSparseDeviceFactory } from '../../src/backends/cuda/methods/block-sparse.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { BlockSparsePrefill, exactBlockSparsePairs } from '../../src/methods/block-sparse.js';
import { tinyConfig } from '../engine/model-fixtures.js';
import { type BlockSparseInputs, cpuCacheOf, randomBlockSparseInputs } from './block-sparse-inputs.js';
import { cudaSkip } from './cuda-skip.js';
import { countNaN, relativeError } from './helpers.js';

const skip = cudaSkip('CUDA block-sparse 64-row chunk tests');
const TOLERANCE = 1e-2;

describe('CUDA block-sparse with 64-row chunks', { skip }, () => {
  let rt: CudaRuntime;
  let noWgmma: string | null = null;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    noWgmma = wgmmaPrefillUnsupported(rt.cuda.info, 128);
  });
  after(() => rt?.dispose());

  /** Runs the launcher with `options` over `sel`; returns [n, H, D] and the label-relevant tiling that ran. */
  function runLauncher(
    x: BlockSparseInputs, sel: ChunkSelection, options: BlockSparseKernelOptions,
  ): { out: Float32Array; leanMask: boolean; consumers: number; persistent: boolean; stepsFlat: boolean } {
    const { n, H, Hkv, D, kvStride } = x;
    const launcher = new BlockSparseFlashPrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, options);
    const lists = uploadChunkLists(rt, packChunkLists(sel));
    const dq = uploadAsBf16(rt, x.q), dk = uploadAsBf16(rt, x.k), dv = uploadAsBf16(rt, x.v);
    const dout = poisonedBf16(rt, n * H * D);
    launcher.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, lists, numQueries: n, kvLen: n, kvStride, scale: 1 / Math.sqrt(D) });
    const out = downloadBf16(rt, dout, n * H * D);
    const tiling = launcher.wgmma?.tiling;
    if (!tiling) throw new Error('the automatic choice did not run the wgmma kernel');
    for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
    releaseChunkLists(rt, lists);
    launcher.release();
    return {
      out, leanMask: tiling.ablation?.leanMask === true, consumers: tiling.consumers,
      persistent: tiling.ablation?.persistent === true && tiling.ablation.workCounter === true, stepsFlat: tiling.ablation?.stepsFlat === true,
    };
  }

  // H = 4 heads: a small grid, so dense-ish lists keep 128-row CTAs; t = 3 of 32 chunks is sparse (192 rows).
  const cases = [
    { n: 2048, H: 4, Hkv: 2, D: 128, chunk: 64, top: 16, extraRows: 0, seed: 21, consumers: 2 },
    { n: 2048, H: 4, Hkv: 2, D: 128, chunk: 64, top: 3, extraRows: 0, seed: 22, consumers: 3 },
    { n: 1999, H: 4, Hkv: 1, D: 64, chunk: 64, top: 8, extraRows: 5, seed: 23, consumers: 2 }, // partial last chunk, D = 64
    { n: 1999, H: 4, Hkv: 1, D: 64, chunk: 64, top: 4, extraRows: 5, seed: 24, consumers: 3 },
    { n: 1536, H: 2, Hkv: 1, D: 128, chunk: 128, top: 4, extraRows: 0, seed: 25, consumers: 2 }, // c = 128: two warpgroups share a list
  ];
  for (const c of cases) {
    test(`c=${c.chunk} n=${c.n} H=${c.H} D=${c.D} t=${c.top}: autoLeanMask runs ${c.consumers * 64}-row CTAs, with lean masks where that tiling's flags take them, bit for bit the plain choice, and matches the CPU method`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      const x = randomBlockSparseInputs(c.n, c.H, c.Hkv, c.D, c.extraRows, c.seed);
      const cache = cpuCacheOf(x);
      const shape = { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D, scale: 1 / Math.sqrt(c.D), slidingWindow: null, logitSoftcap: null };
      const ref = new Float32Array(c.n * c.H * c.D);
      const cpu = new BlockSparsePrefill(c.chunk, null, c.top);
      cpu.prefill({ layer: 0, shape, queries: x.q, numQueries: c.n, queryStart: 0, cache, out: ref, isLastChunk: true });
      const sel = selectBlockSparseChunks(cpu, x.q, cache.keys.map((k) => k.subarray(0, c.n * c.D)), c.n, c.H, c.D);
      const lean = runLauncher(x, sel, { autoLeanMask: true });
      const plain = runLauncher(x, sel, { autoLeanMask: false });
      // A tiling whose own default flags exclude lean masks (maskFirst, the 128-row default since session 8)
      // keeps its plain kernel under autoLeanMask.
      const tilingName = c.consumers === 3 ? 'rows192' : 'rows128';
      const leanTakes = leanMaskVariant(c.consumers === 3 ? AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING : AUTO_BLOCK_SPARSE_WGMMA_TILING) !== null;
      assert.equal(lean.leanMask, leanTakes, leanTakes ? 'the automatic tiling took lean masks' : 'the tiling\'s flags exclude lean masks');
      assert.equal(plain.leanMask, false);
      assert.equal(lean.consumers, c.consumers, 'row tiling');
      assert.equal(countNaN(lean.out), 0, 'every output element must be written');
      assert.deepEqual(lean.out, plain.out, 'lean masks change no result');
      const byDefault = runLauncher(x, sel, {});
      assert.equal(byDefault.leanMask, AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS[tilingName] && leanTakes, 'the per-tiling default');
      assert.deepEqual(byDefault.out, plain.out);
      const err = relativeError(lean.out, ref);
      console.log(`#   rel err ${err.toExponential(2)}`);
      assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
    });
  }

  test('c = 16 lists keep the plain kernels under autoLeanMask', (t) => {
    if (noWgmma) return t.skip(noWgmma);
    const n = 1024, H = 4, Hkv = 2, D = 128;
    const x = randomBlockSparseInputs(n, H, Hkv, D, 0, 26);
    const cache = cpuCacheOf(x);
    const sel = selectBlockSparseChunks(new BlockSparsePrefill(16, null, 10), x.q, cache.keys.map((k) => k.subarray(0, n * D)), n, H, D);
    assert.equal(runLauncher(x, sel, { autoLeanMask: true }).leanMask, false);
  });

  // Session 10: persistent CTAs with a work counter on sparse lists (autoPersistent) and the flat steps kernel on
  // chunks below 64 rows (autoStepsFlat), each bit for bit the launcher without them.
  const autoVariantCases = [
    { what: 'c = 16, sparse lists: 192 rows, persistent and the flat steps kernel', n: 2048, H: 4, Hkv: 2, D: 128, chunk: 16, top: 10, seed: 41, persistent: true, stepsFlat: true, leanMask: false },
    { what: 'c = 16, sparse lists, D = 64, partial last CTA', n: 1500, H: 8, Hkv: 2, D: 64, chunk: 16, top: 6, seed: 42, persistent: true, stepsFlat: true, leanMask: false },
    { what: 'c = 64, sparse lists: lean masks and persistent, the plain steps kernel', n: 2048, H: 4, Hkv: 2, D: 128, chunk: 64, top: 3, seed: 43, persistent: true, stepsFlat: false, leanMask: true },
    { what: 'c = 64, dense-ish lists: neither (128 rows)', n: 2048, H: 4, Hkv: 2, D: 128, chunk: 64, top: 16, seed: 44, persistent: false, stepsFlat: false, leanMask: false },
  ];
  for (const c of autoVariantCases) {
    test(`autoPersistent + autoStepsFlat, ${c.what}: bit for bit the launcher without them, and the CPU method`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      const x = randomBlockSparseInputs(c.n, c.H, c.Hkv, c.D, 0, c.seed);
      const cache = cpuCacheOf(x);
      const method = new BlockSparsePrefill(c.chunk, null, c.top);
      const keys = cache.keys.map((k) => k.subarray(0, c.n * c.D));
      const sel = selectBlockSparseChunks(method, x.q, keys, c.n, c.H, c.D);
      const on = runLauncher(x, sel, { autoPersistent: true, autoStepsFlat: true });
      const off = runLauncher(x, sel, { autoPersistent: false, autoStepsFlat: false });
      assert.deepEqual({ persistent: on.persistent, stepsFlat: on.stepsFlat, leanMask: on.leanMask }, { persistent: c.persistent, stepsFlat: c.stepsFlat, leanMask: c.leanMask });
      assert.equal(off.persistent || off.stepsFlat, false, 'the options off run neither');
      assert.equal(countNaN(on.out), 0, 'every output element must be written');
      let differ = 0;
      for (let i = 0; i < on.out.length; i++) if (!Object.is(on.out[i], off.out[i])) differ++;
      assert.equal(differ, 0, 'outputs differ from the launcher without the options');
      const ref = new Float32Array(c.n * c.H * c.D);
      method.prefill({
        layer: 0, shape: { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D, scale: 1 / Math.sqrt(c.D), slidingWindow: null, logitSoftcap: null },
        queries: x.q, numQueries: c.n, queryStart: 0, cache, out: ref, isLastChunk: true,
      });
      const err = relativeError(on.out, ref);
      console.log(`#   rel err ${err.toExponential(2)}`);
      assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
    });
  }

  test('an explicit tiling refuses autoPersistent and autoStepsFlat', () => {
    for (const key of ['autoPersistent', 'autoStepsFlat'] as const) {
      assert.throws(() => new BlockSparseFlashPrefill(rt, { numHeads: 4, numKvHeads: 2, headDim: 128 }, { wgmma: { blockN: 64 }, [key]: true }),
        new RegExp(`${key} applies to the automatic wgmma tilings only`));
    }
  });

  test('an explicit tiling refuses autoLeanMask', () => {
    assert.throws(() => new BlockSparseFlashPrefill(rt, { numHeads: 4, numKvHeads: 2, headDim: 128 }, { headsPerCta: 1, mTiles: 1, autoLeanMask: true }),
      /autoLeanMask applies to the automatic wgmma tilings only/);
  });

  for (const sparsity of [0.5, 0.9]) {
    test(`the method at chunkSize 64, s = ${sparsity}: GPU lists equal the CPU selection, same counts and outputs`, () => {
      const n = 2500, H = 4, Hkv = 2, D = 128;
      const x = randomBlockSparseInputs(n, H, Hkv, D, 0, 30 + sparsity * 10);
      const config = tinyConfig('llama', { numHeads: H, numKvHeads: Hkv, headDim: D });
      const method = blockSparseDeviceFactory.create(rt, config, { sparsity, params: { chunkSize: 64 } });
      assert.equal(method.chunkSize, 64);
      const cache = new DeviceLayerKvCache(rt, Hkv, D, n);
      // The cache takes [n, Hkv, D] rows; the inputs hold [Hkv, n, D].
      const kRows = new Float32Array(n * Hkv * D), vRows = new Float32Array(n * Hkv * D);
      for (let kvh = 0; kvh < Hkv; kvh++) {
        for (let r = 0; r < n; r++) {
          kRows.set(x.k.subarray((kvh * n + r) * D, (kvh * n + r + 1) * D), (r * Hkv + kvh) * D);
          vRows.set(x.v.subarray((kvh * n + r) * D, (kvh * n + r + 1) * D), (r * Hkv + kvh) * D);
        }
      }
      const dk = uploadAsBf16(rt, kRows), dv = uploadAsBf16(rt, vRows), dq = uploadAsBf16(rt, x.q);
      cache.appendTokens({ k: dk.ptr, v: dv.ptr, rowStride: Hkv * D }, n);
      const dout = poisonedBf16(rt, n * H * D);
      const shape = { numHeads: H, numKvHeads: Hkv, headDim: D, scale: 1 / Math.sqrt(D) };
      const counts = method.prefill({ layer: 0, shape, q: dq.ptr, qRowStride: H * D, numQueries: n, queryStart: 0, cache, out: dout.ptr, isLastChunk: true });
      const out = downloadBf16(rt, dout, n * H * D);
      const gpuSel = selectionFromLists(method.downloadLastLists());
      method.reset();
      cache.release();
      for (const b of [dq, dk, dv, dout]) rt.pool.release(b);

      const cpuCache = cpuCacheOf(x);
      const cpu = new BlockSparsePrefill(64, sparsity, null);
      const ref = new Float32Array(n * H * D);
      const cpuCounts = cpu.prefill({
        layer: 0, shape: { ...shape, slidingWindow: null, logitSoftcap: null }, queries: x.q, numQueries: n, queryStart: 0, cache: cpuCache, out: ref, isLastChunk: true,
      });
      const cpuSel = selectBlockSparseChunks(cpu, x.q, cpuCache.keys.map((k) => k.subarray(0, n * D)), n, H, D);
      const t = cpu.topChunksFor(n);
      for (let h = 0; h < H; h++) {
        assert.deepEqual([...gpuSel.heads[h].counts], [...cpuSel.heads[h].counts], `counts of head ${h}`);
        const B = Math.ceil(n / 64);
        for (let m = 0; m < B; m++) {
          const got = [...gpuSel.heads[h].selected.subarray(m * gpuSel.heads[h].stride, m * gpuSel.heads[h].stride + gpuSel.heads[h].counts[m])];
          const want = [...cpuSel.heads[h].selected.subarray(m * cpuSel.heads[h].stride, m * cpuSel.heads[h].stride + cpuSel.heads[h].counts[m])];
          assert.deepEqual(got, want, `head ${h} chunk ${m}`);
        }
      }
      assert.deepEqual([...counts.attended], [...cpuCounts.attended]);
      assert.deepEqual([...counts.dense], [...cpuCounts.dense]);
      assert.equal(counts.attended[0], exactBlockSparsePairs(n, 64, t));
      assert.equal(countNaN(out), 0, 'every output element must be written');
      const err = relativeError(out, ref);
      console.log(`#   rel err ${err.toExponential(2)}`);
      assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
    });
  }
});
