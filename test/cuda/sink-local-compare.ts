/**
 * The chunk-by-chunk comparison both GPU sink + local prefill test files run (the window kernel's and
 * the Vertical-Slash kernel's): the CPU method (src/methods/sink-local.ts) and each GPU method see the
 * same bf16-rounded prompt in the same chunks; per chunk, exact pair counts, no NaN left from the
 * poisoned output, and relative error within bf16 tolerance of the CPU's result.
 */
import assert from 'node:assert/strict';
import { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import type { SinkLocalDevicePrefill } from '../../src/backends/cuda/methods/sink-local-prefill.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { type SinkLocalRule, SinkLocalPrefill } from '../../src/methods/sink-local.js';
import { countNaN, relativeError } from './helpers.js';

export const SINK_LOCAL_TOLERANCE = 1e-2;

export interface SinkLocalCase {
  name: string; n: number; H: number; Hkv: number; D: number; seed: number;
  options: { sparsity?: number; params?: Record<string, unknown> };
  /** Prompt split into chunks of these lengths (sum n). */
  chunks: number[];
}

/** q [n, H, D], k and v [n, Hkv, D] (float values already bf16-exact). */
export interface SinkLocalInputs { q: Float32Array; k: Float32Array; v: Float32Array }

/** Runs the CPU method and every GPU method chunk by chunk and checks each chunk; `gpus` are reset after. */
export function compareSinkLocalChunks(
  rt: CudaRuntime, c: SinkLocalCase, rule: SinkLocalRule, x: SinkLocalInputs, gpus: { label: string; method: SinkLocalDevicePrefill }[],
): void {
  const { n, H, Hkv, D } = c;
  const scale = 1 / Math.sqrt(D);
  const cpu = new SinkLocalPrefill(rule);
  const cache = new LayerKvCache(Hkv, D, n);
  const devCache = new DeviceLayerKvCache(rt, Hkv, D, n);
  const dk = uploadAsBf16(rt, x.k), dv = uploadAsBf16(rt, x.v), dq = uploadAsBf16(rt, x.q);
  try {
    let start = 0;
    for (const T of c.chunks) {
      cache.append(x.k.subarray(start * Hkv * D, (start + T) * Hkv * D), x.v.subarray(start * Hkv * D, (start + T) * Hkv * D), T, start);
      devCache.appendTokens({ k: dk.ptr + BigInt(2 * start * Hkv * D), v: dv.ptr + BigInt(2 * start * Hkv * D), rowStride: Hkv * D }, T);
      const ref = new Float32Array(T * H * D);
      const cpuCounts = cpu.prefill({
        layer: 0, shape: { numHeads: H, numKvHeads: Hkv, headDim: D, scale, slidingWindow: null, logitSoftcap: null },
        queries: x.q.subarray(start * H * D, (start + T) * H * D), numQueries: T, queryStart: start, cache, out: ref, isLastChunk: start + T === n,
      });
      for (const { label, method } of gpus) {
        const dout = poisonedBf16(rt, T * H * D);
        const counts = method.prefill({
          layer: 0, shape: { numHeads: H, numKvHeads: Hkv, headDim: D, scale }, q: dq.ptr + BigInt(2 * start * H * D), qRowStride: H * D,
          numQueries: T, queryStart: start, cache: devCache, out: dout.ptr, isLastChunk: start + T === n,
        });
        const out = downloadBf16(rt, dout, T * H * D);
        rt.pool.release(dout);
        assert.deepEqual([...counts.attended], [...cpuCounts.attended], `${label}: exact attended pairs per head`);
        assert.deepEqual([...counts.dense], [...cpuCounts.dense], `${label}: dense pairs per head`);
        assert.equal(countNaN(out), 0, `${label}: every output element must be written`);
        const err = relativeError(out, ref);
        console.log(`#   chunk at ${start} (${T} queries) ${label}: rel err ${err.toExponential(2)}`);
        assert.ok(err < SINK_LOCAL_TOLERANCE, `${label}, chunk at ${start}: relative error ${err} over ${SINK_LOCAL_TOLERANCE}`);
      }
      start += T;
    }
  } finally {
    for (const { method } of gpus) method.reset();
    devCache.release();
    for (const b of [dk, dv, dq]) rt.pool.release(b);
  }
}
