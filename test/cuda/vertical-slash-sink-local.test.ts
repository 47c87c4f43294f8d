/**
 * GPU sink + local prefill (src/backends/cuda/methods/sink-local-prefill.ts, the Vertical-Slash kernel
 * with a per-row window) against the CPU method (src/methods/sink-local.ts) on the same bf16-rounded
 * inputs, whole prompt and chunked: outputs within bf16 tolerance of the CPU's float64 result, exact
 * pair counts, NaN-poisoned outputs. Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import { SinkLocalDevicePrefill, sinkLocalRuleFrom } from '../../src/backends/cuda/methods/sink-local-prefill.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { SinkLocalPrefill } from '../../src/methods/sink-local.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA sink-local prefill tests');

const TOLERANCE = 1e-2;

interface Case {
  name: string; n: number; H: number; Hkv: number; D: number; seed: number;
  options: { sparsity?: number; params?: Record<string, unknown> };
  /** Prompt split into chunks of these lengths (sum n). */
  chunks: number[];
}

const CASES: Case[] = [
  { name: 'fixed window 100, 4 sinks, whole prompt', n: 700, H: 8, Hkv: 2, D: 128, seed: 31, options: { params: { localWindow: 100 } }, chunks: [700] },
  { name: 'target sparsity 0.8, two chunks (partial blocks)', n: 900, H: 4, Hkv: 1, D: 64, seed: 32, options: { sparsity: 0.8 }, chunks: [333, 567] },
  { name: '70 sinks, window 10, three chunks', n: 400, H: 4, Hkv: 4, D: 128, seed: 33, options: { params: { sinkTokens: 70, localWindow: 10 } }, chunks: [50, 200, 150] },
];

describe('CUDA sink-local prefill vs the CPU method', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  for (const c of CASES) {
    test(`${c.name}: n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D}`, () => {
      const { n, H, Hkv, D } = c;
      const rand = randomGenerator(c.seed);
      const q = randomBf16Values(n * H * D, rand, 2), kt = randomBf16Values(n * Hkv * D, rand, 2), vt = randomBf16Values(n * Hkv * D, rand);
      const scale = 1 / Math.sqrt(D);
      const rule = sinkLocalRuleFrom(c.options);
      const cpu = new SinkLocalPrefill(rule);
      const cache = new LayerKvCache(Hkv, D, n);
      const devCache = new DeviceLayerKvCache(rt, Hkv, D, n);
      const dkT = uploadAsBf16(rt, kt), dvT = uploadAsBf16(rt, vt), dq = uploadAsBf16(rt, q);
      const gpus = [new SinkLocalDevicePrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, rule, 1),
        new SinkLocalDevicePrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, rule, 2)];
      let start = 0;
      for (const T of c.chunks) {
        cache.append(kt.subarray(start * Hkv * D, (start + T) * Hkv * D), vt.subarray(start * Hkv * D, (start + T) * Hkv * D), T, start);
        devCache.appendTokens({ k: dkT.ptr + BigInt(2 * start * Hkv * D), v: dvT.ptr + BigInt(2 * start * Hkv * D), rowStride: Hkv * D }, T);
        const ref = new Float32Array(T * H * D);
        const cpuCounts = cpu.prefill({
          layer: 0, shape: { numHeads: H, numKvHeads: Hkv, headDim: D, scale, slidingWindow: null, logitSoftcap: null },
          queries: q.subarray(start * H * D, (start + T) * H * D), numQueries: T, queryStart: start, cache, out: ref, isLastChunk: start + T === n,
        });
        for (const gpu of gpus) {
          const dout = poisonedBf16(rt, T * H * D);
          const counts = gpu.prefill({
            layer: 0, shape: { numHeads: H, numKvHeads: Hkv, headDim: D, scale }, q: dq.ptr + BigInt(2 * start * H * D), qRowStride: H * D,
            numQueries: T, queryStart: start, cache: devCache, out: dout.ptr, isLastChunk: start + T === n,
          });
          const out = downloadBf16(rt, dout, T * H * D);
          rt.pool.release(dout);
          assert.deepEqual([...counts.attended], [...cpuCounts.attended], 'exact attended pairs per head');
          assert.deepEqual([...counts.dense], [...cpuCounts.dense], 'dense pairs per head');
          assert.equal(countNaN(out), 0, 'every output element must be written');
          const err = relativeError(out, ref);
          console.log(`#   chunk at ${start} (${T} queries) mTiles ${gpu === gpus[0] ? 1 : 2}: rel err ${err.toExponential(2)}`);
          assert.ok(err < TOLERANCE, `chunk at ${start}: relative error ${err} over ${TOLERANCE}`);
        }
        start += T;
      }
      for (const gpu of gpus) gpu.reset();
      devCache.release();
      for (const b of [dkT, dvT, dq]) rt.pool.release(b);
    });
  }
});
