/**
 * SnapKV and Ada-SnapKV on the GPU against the CPU methods (src/methods/snapkv.ts, ada-snapkv.ts) on
 * the same bf16 rows: the pooled window importance, the kept rows (compared as the compacted cache
 * rows themselves, so selection and gather are both checked), per-head counts, decode outputs and
 * counts over steps after the prompt, and keep_h = the whole prompt (equal to our dense decode).
 * Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fromBf16 } from '../../src/backends/cuda/bf16.js';
import { SnapKvKernels } from '../../src/backends/cuda/kernels/snapkv.js';
import type { DeviceDecodeFactory } from '../../src/backends/cuda/methods/contract.js';
import { adaSnapKvDeviceFactory } from '../../src/backends/cuda/methods/ada-snapkv.js';
import { type EvictedDeviceDecode, snapKvDeviceFactory } from '../../src/backends/cuda/methods/snapkv.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, downloadF32, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import type { DecodeAttention } from '../../src/engine/attention.js';
import { adaSnapKvMethod } from '../../src/methods/ada-snapkv.js';
import { resolveOptions } from '../../src/methods/options.js';
import { averagePool, forceKeep, parseSnapKv, windowImportance } from '../../src/methods/snapkv-importance.js';
import { snapKvMethod } from '../../src/methods/snapkv.js';
import type { MethodDescriptor } from '../../src/methods/types.js';
import { randomBf16Values, randomGenerator, relativeError } from './helpers.js';
import { appendRandom, attentionConfig, checkDecodeStep, cpuShape, denseDecodeOutput, twinCaches } from './sparse-decode-helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA SnapKV tests');

const TOLERANCE = 1e-2;

interface Case {
  name: string;
  method: MethodDescriptor;
  factory: DeviceDecodeFactory;
  H: number; Hkv: number; D: number; n: number;
  sparsity: number;
  params: Record<string, number>;
  steps: number;
  seed: number;
}

const cases: Case[] = [
  { name: 'SnapKV s = 0.8, GQA 4, D = 128', method: snapKvMethod, factory: snapKvDeviceFactory, H: 16, Hkv: 4, D: 128, n: 1800, sparsity: 0.8,
    params: { observationWindow: 96 }, steps: 6, seed: 71 },
  { name: 'SnapKV s = 0.9, no GQA, D = 64, short local window', method: snapKvMethod, factory: snapKvDeviceFactory, H: 4, Hkv: 4, D: 64, n: 1333,
    sparsity: 0.9, params: { observationWindow: 64, localWindow: 16, kernelSize: 7 }, steps: 4, seed: 72 },
  { name: 'Ada-SnapKV s = 0.8, GQA 2, D = 128', method: adaSnapKvMethod, factory: adaSnapKvDeviceFactory, H: 8, Hkv: 4, D: 128, n: 1500,
    sparsity: 0.8, params: { observationWindow: 80 }, steps: 5, seed: 73 },
  { name: 'Ada-SnapKV s = 0.95, D = 64 (minimum above capacity share)', method: adaSnapKvMethod, factory: adaSnapKvDeviceFactory, H: 8, Hkv: 2,
    D: 64, n: 2100, sparsity: 0.95, params: { observationWindow: 64, localWindow: 32 }, steps: 3, seed: 74 },
];

describe('CUDA SnapKV / Ada-SnapKV', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  test('pooled window importance matches the CPU (mean and max)', () => {
    const H = 8, Hkv = 2, D = 128, n = 700, W = 50;
    const rand = randomGenerator(81);
    const caches = twinCaches(rt, Hkv, D, n);
    appendRandom(rt, caches, n, rand);
    const wq = randomBf16Values(W * H * D, rand, 2);
    const dwq = uploadAsBf16(rt, wq);
    const settings = parseSnapKv('snapkv', resolveOptions(snapKvMethod, { sparsity: 0.5, params: { observationWindow: W } }));
    const kernels = new SnapKvKernels(rt, { numHeads: H, numKvHeads: Hkv, headDim: D });
    for (const aggregation of ['mean', 'max'] as const) {
      const pooled = kernels.windowImportance({
        windowQueries: dwq.ptr, windowLength: W, promptLength: n, cache: caches.device, scale: 1 / Math.sqrt(D), aggregation,
        kernelSize: settings.kernelSize, prefixTokens: settings.prefixTokens, localWindow: settings.localWindow,
      });
      const got = downloadF32(rt, pooled, Hkv * n);
      rt.pool.release(pooled);
      const want = windowImportance({ layer: 0, shape: cpuShape(H, Hkv, D), windowQueries: wq, windowLength: W, windowStart: n - W, cache: caches.cpu }, aggregation);
      let worst = 0;
      for (let h = 0; h < Hkv; h++) {
        averagePool(want[h], settings.kernelSize);
        forceKeep(want[h], settings);
        for (let j = 0; j < n; j++) {
          const a = got[h * n + j], b = want[h][j];
          if (b === Infinity) assert.equal(a, Infinity, `head ${h} key ${j} is forced`);
          else worst = Math.max(worst, Math.abs(a - b) / Math.max(Math.abs(b), 1e-30));
        }
      }
      console.log(`#   ${aggregation}: worst relative difference ${worst.toExponential(2)}`);
      assert.ok(worst < 1e-3, `${aggregation}: pooled importance differs by ${worst}`);
    }
    rt.pool.release(dwq);
    caches.device.release();
  });

  for (const c of cases) {
    test(`${c.name}: same kept rows, counts and decode outputs as the CPU`, () => {
      const rand = randomGenerator(c.seed);
      const W = Math.min(c.params.observationWindow, c.n);
      const caches = twinCaches(rt, c.Hkv, c.D, c.n + c.steps);
      appendRandom(rt, caches, c.n, rand);
      const wq = randomBf16Values(W * c.H * c.D, rand, 2);
      const shape = cpuShape(c.H, c.Hkv, c.D);
      const cpu = c.method.create(resolveOptions(c.method, { sparsity: c.sparsity, params: c.params })).decode as DecodeAttention;
      const gpu = c.factory.create(rt, attentionConfig(c.H, c.Hkv, c.D), { sparsity: c.sparsity, params: c.params });
      assert.equal(gpu.observationWindow, cpu.observationWindow);
      cpu.afterPrefill?.({ layer: 2, shape, windowQueries: wq, windowLength: W, windowStart: c.n - W, cache: caches.cpu });
      const dwq = uploadAsBf16(rt, wq);
      gpu.afterPrefill?.({ layer: 2, shape, windowQueries: dwq.ptr, windowLength: W, promptLength: c.n, cache: caches.device });
      rt.pool.release(dwq);

      const keep = (gpu as EvictedDeviceDecode).keptPerHead(2);
      assert.ok(keep, 'the layer was compressed');
      assert.deepEqual([...keep], caches.cpu.lengths, 'kept rows per KV head');
      // The compacted rows themselves: each head's rows [0, keep_h) hold the CPU's kept keys, in order.
      rt.synchronize();
      const words = new Uint16Array(c.Hkv * caches.device.capacity * c.D);
      rt.cuda.download(words, caches.device.keys.ptr);
      const keys = fromBf16(words);
      for (let h = 0; h < c.Hkv; h++) {
        const rows = keep[h] * c.D;
        const got = keys.subarray(h * caches.device.capacity * c.D, h * caches.device.capacity * c.D + rows);
        const wrong = got.findIndex((x, i) => x !== caches.cpu.keys[h][i]);
        assert.equal(wrong, -1, `head ${h}: kept row ${Math.floor(wrong / c.D)} (position ${caches.cpu.positions[h][Math.floor(wrong / c.D)]}) differs`);
      }
      const estimationMs = (gpu as EvictedDeviceDecode).lastEstimationMs();
      assert.ok(estimationMs !== null && estimationMs > 0, `estimation time ${estimationMs}`);
      console.log(`#   kept per head ${[...keep].join('/')} of ${c.n}; compression ${estimationMs.toFixed(2)} ms`);
      for (let s = 0; s < c.steps; s++) checkDecodeStep(rt, caches, cpu, gpu, c.H, c.Hkv, c.D, 2, rand, TOLERANCE);
      gpu.reset?.();
      caches.device.release();
    });
  }

  test('keep_h = the whole prompt (s = 0) reads everything: equal to our dense decode', () => {
    const H = 16, Hkv = 4, D = 128, n = 900;
    const rand = randomGenerator(91);
    const caches = twinCaches(rt, Hkv, D, n + 1);
    appendRandom(rt, caches, n, rand);
    const gpu = snapKvDeviceFactory.create(rt, attentionConfig(H, Hkv, D), { sparsity: 0, params: {} });
    const wq = uploadAsBf16(rt, randomBf16Values(256 * H * D, rand, 2));
    const shape = cpuShape(H, Hkv, D);
    gpu.afterPrefill?.({ layer: 0, shape, windowQueries: wq.ptr, windowLength: 256, promptLength: n, cache: caches.device });
    appendRandom(rt, caches, 1, rand);
    const dq = uploadAsBf16(rt, randomBf16Values(H * D, rand, 2));
    const a = poisonedBf16(rt, H * D);
    const counts = gpu.decode({ layer: 0, shape, q: dq.ptr, position: n, cache: caches.device, out: a.ptr });
    const gb = denseDecodeOutput(rt, H, Hkv, D, dq.ptr, caches.device, n + 1);
    const ga = downloadBf16(rt, a, H * D);
    for (const x of [wq, dq, a]) rt.pool.release(x);
    assert.equal(counts.attended[0], n + 1);
    const err = relativeError(ga, gb);
    assert.ok(err < 4e-3, `snapkv at s = 0 differs from dense decode by ${err}`);
    assert.throws(() => gpu.decode({ layer: 1, shape, q: 0n, position: n, cache: caches.device, out: 0n }), /before afterPrefill/);
    gpu.reset?.();
    caches.device.release();
  });
});
