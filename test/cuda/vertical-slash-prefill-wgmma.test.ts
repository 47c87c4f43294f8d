/**
 * The Hopper wgmma Vertical-Slash kernel (vertical-slash-prefill-wgmma.ts, VerticalSlashFlashPrefill
 * with a `wgmma` option) against the CPU methods on the same bf16-rounded inputs: the GPU method builds
 * its index (checked against the CPU's in vertical-slash-prefill.test.ts) and runs the default kernel;
 * the wgmma kernel then runs over that same device index, and both outputs must lie within bf16
 * tolerance of the CPU's float64 result. Sink + local runs the kernel's per-row window over
 * SinkLocalDevicePrefill's index. Outputs are NaN-poisoned, so an unwritten element fails. Skipped
 * where there is no CUDA device, and per test where the GPU is not Hopper (sm_90a).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { wgmmaPrefillUnsupported } from '../../src/backends/cuda/kernels/flash-prefill-wgmma.js';
import { VerticalSlashFlashPrefill } from '../../src/backends/cuda/kernels/vertical-slash-prefill.js';
import type { VerticalSlashWgmmaTiling } from '../../src/backends/cuda/kernels/vertical-slash-prefill-wgmma.js';
import { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import { SinkLocalDevicePrefill, sinkLocalRuleFrom } from '../../src/backends/cuda/methods/sink-local-prefill.js';
import { VerticalSlashDevicePrefill, verticalSlashDeviceParams } from '../../src/backends/cuda/methods/vertical-slash.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { SinkLocalPrefill } from '../../src/methods/sink-local.js';
import { VerticalSlashPrefill } from '../../src/methods/vertical-slash.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA vertical-slash wgmma prefill tests');

const TOLERANCE = 1e-2;
const STAGES: VerticalSlashWgmmaTiling['stages'][] = [2, 3, 4];

interface Case {
  name: string; n: number; H: number; Hkv: number; D: number; seed: number;
  params: Record<string, unknown>;
}

// Odd and even block counts (the last CTA's second warpgroup idle or partial), GQA, both head dims,
// few columns (range-heavy) and many (gather-heavy), and a selection covering everything.
const VS_CASES: Case[] = [
  { name: 'GQA 8/2, D=128, counts 40/70', n: 1000, H: 8, Hkv: 2, D: 128, seed: 11, params: { verticalSize: 40, slashSize: 70 } },
  { name: 'n not a multiple of 64 (odd block count), D=64', n: 333, H: 4, Hkv: 4, D: 64, seed: 22, params: { verticalSize: 20, slashSize: 80 } },
  { name: 'many columns, only the 64 forced diagonals, GQA 8/1, D=64', n: 1200, H: 8, Hkv: 1, D: 64, seed: 13, params: { verticalSize: 600, slashSize: 64, approximationSize: 64 } },
  { name: 'selection covering everything (= dense)', n: 200, H: 4, Hkv: 2, D: 128, seed: 15, params: { verticalSize: 4096, slashSize: 4096 } },
];

describe('CUDA vertical-slash wgmma prefill vs the CPU methods', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  for (const c of VS_CASES) {
    test(`${c.name}: n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D}`, (t) => {
      const unsupported = wgmmaPrefillUnsupported(rt.cuda.info, c.D);
      if (unsupported) {
        t.skip(unsupported);
        return;
      }
      const { n, H, Hkv, D } = c;
      const rand = randomGenerator(c.seed);
      const q = randomBf16Values(n * H * D, rand, 2), kt = randomBf16Values(n * Hkv * D, rand, 2), vt = randomBf16Values(n * Hkv * D, rand);
      const scale = 1 / Math.sqrt(D);
      const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
      const p = verticalSlashDeviceParams({ params: c.params });
      const cpu = new VerticalSlashPrefill(p.approximationSize, p.sparsity, p.verticalSize, p.slashSize);
      const cache = new LayerKvCache(Hkv, D, n);
      cache.append(kt, vt, n, 0);
      const ref = new Float32Array(n * H * D);
      cpu.prefill({
        layer: 0, shape: { ...shape, scale, slidingWindow: null, logitSoftcap: null },
        queries: q, numQueries: n, queryStart: 0, cache, out: ref, isLastChunk: true,
      });

      const method = new VerticalSlashDevicePrefill(rt, shape, p);
      const dq = uploadAsBf16(rt, q), dkT = uploadAsBf16(rt, kt), dvT = uploadAsBf16(rt, vt);
      const devCache = new DeviceLayerKvCache(rt, Hkv, D, n + 5);
      devCache.appendTokens({ k: dkT.ptr, v: dvT.ptr, rowStride: Hkv * D }, n);
      const dout = poisonedBf16(rt, n * H * D);
      method.prefill({
        layer: 0, shape: { ...shape, scale }, q: dq.ptr, qRowStride: H * D,
        numQueries: n, queryStart: 0, cache: devCache, out: dout.ptr, isLastChunk: true,
      });
      const index = method.lastIndex;
      assert.ok(index);
      const mmaErr = relativeError(downloadBf16(rt, dout, n * H * D), ref);
      assert.ok(mmaErr < TOLERANCE, `default kernel: relative error ${mmaErr}`);
      for (const stages of STAGES) {
        const kernel = new VerticalSlashFlashPrefill(rt, shape, { wgmma: { stages } });
        const wout = poisonedBf16(rt, n * H * D);
        kernel.run({
          q: dq.ptr, k: devCache.keys.ptr, v: devCache.values.ptr, kvStride: devCache.capacity,
          out: wout.ptr, numQueries: n, index, scale,
        });
        const out = downloadBf16(rt, wout, n * H * D);
        rt.pool.release(wout);
        assert.equal(countNaN(out), 0, `${kernel.label}: every output element must be written`);
        const err = relativeError(out, ref);
        console.log(`#   ${kernel.label}: rel err ${err.toExponential(2)} (default kernel ${mmaErr.toExponential(2)})`);
        assert.ok(err < TOLERANCE, `${kernel.label}: relative error ${err} over ${TOLERANCE}`);
      }
      // The method itself given the wgmma kernel (its constructor option): same pairs, same tolerance.
      const wgmmaMethod = new VerticalSlashDevicePrefill(rt, shape, p, { wgmma: {} });
      const mout = poisonedBf16(rt, n * H * D);
      const counts = wgmmaMethod.prefill({
        layer: 0, shape: { ...shape, scale }, q: dq.ptr, qRowStride: H * D,
        numQueries: n, queryStart: 0, cache: devCache, out: mout.ptr, isLastChunk: true,
      });
      assert.deepEqual(Array.from(counts.attended), Array.from(index.pairs), 'method with { wgmma }: exact pairs as the default kernel\'s');
      const methodOut = downloadBf16(rt, mout, n * H * D);
      rt.pool.release(mout);
      assert.equal(countNaN(methodOut), 0, 'method with { wgmma }: every output element must be written');
      const methodErr = relativeError(methodOut, ref);
      assert.ok(methodErr < TOLERANCE, `method with { wgmma }: relative error ${methodErr} over ${TOLERANCE}`);
      wgmmaMethod.reset();
      method.reset();
      devCache.release();
      for (const b of [dq, dkT, dvT, dout]) rt.pool.release(b);
    });
  }

  // The per-row window (sink + local), whole prompt and a later chunk (queryStart > 0).
  const SINK_LOCAL: { name: string; n: number; H: number; Hkv: number; D: number; seed: number; params: Record<string, unknown>; chunks: number[] }[] = [
    { name: 'window 100, 4 sinks, whole prompt', n: 700, H: 8, Hkv: 2, D: 128, seed: 31, params: { localWindow: 100 }, chunks: [700] },
    { name: '70 sinks, window 10, two chunks', n: 400, H: 4, Hkv: 4, D: 64, seed: 33, params: { sinkTokens: 70, localWindow: 10 }, chunks: [150, 250] },
  ];
  for (const c of SINK_LOCAL) {
    test(`sink + local, ${c.name}: n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D}`, (t) => {
      const unsupported = wgmmaPrefillUnsupported(rt.cuda.info, c.D);
      if (unsupported) {
        t.skip(unsupported);
        return;
      }
      const { n, H, Hkv, D } = c;
      const rand = randomGenerator(c.seed);
      const q = randomBf16Values(n * H * D, rand, 2), kt = randomBf16Values(n * Hkv * D, rand, 2), vt = randomBf16Values(n * Hkv * D, rand);
      const scale = 1 / Math.sqrt(D);
      const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
      const rule = sinkLocalRuleFrom({ params: c.params });
      const cpu = new SinkLocalPrefill(rule);
      // The method given the wgmma kernel (its constructor option) runs it over its own index.
      const indexer = new SinkLocalDevicePrefill(rt, shape, rule, { wgmma: {} });
      const label = new VerticalSlashFlashPrefill(rt, shape, { wgmma: {} }).label;
      const cache = new LayerKvCache(Hkv, D, n);
      const devCache = new DeviceLayerKvCache(rt, Hkv, D, n);
      const dkT = uploadAsBf16(rt, kt), dvT = uploadAsBf16(rt, vt), dq = uploadAsBf16(rt, q);
      let start = 0;
      for (const T of c.chunks) {
        cache.append(kt.subarray(start * Hkv * D, (start + T) * Hkv * D), vt.subarray(start * Hkv * D, (start + T) * Hkv * D), T, start);
        devCache.appendTokens({ k: dkT.ptr + BigInt(2 * start * Hkv * D), v: dvT.ptr + BigInt(2 * start * Hkv * D), rowStride: Hkv * D }, T);
        const ref = new Float32Array(T * H * D);
        cpu.prefill({
          layer: 0, shape: { ...shape, scale, slidingWindow: null, logitSoftcap: null },
          queries: q.subarray(start * H * D, (start + T) * H * D), numQueries: T, queryStart: start, cache, out: ref, isLastChunk: start + T === n,
        });
        const prepared = indexer.prepareIndex(start, T);
        const dout = poisonedBf16(rt, T * H * D);
        indexer.runPrepared({
          q: dq.ptr + BigInt(2 * start * H * D), qRowStride: H * D, k: devCache.keys.ptr, v: devCache.values.ptr, kvStride: devCache.capacity,
          out: dout.ptr, numQueries: T, queryStart: start, scale,
        }, prepared);
        const out = downloadBf16(rt, dout, T * H * D);
        rt.pool.release(dout);
        assert.equal(countNaN(out), 0, 'every output element must be written');
        const err = relativeError(out, ref);
        console.log(`#   chunk at ${start} (${T} queries) ${label}: rel err ${err.toExponential(2)}`);
        assert.ok(err < TOLERANCE, `chunk at ${start}: relative error ${err} over ${TOLERANCE}`);
        start += T;
      }
      indexer.reset();
      devCache.release();
      for (const b of [dkT, dvT, dq]) rt.pool.release(b);
    });
  }
});
