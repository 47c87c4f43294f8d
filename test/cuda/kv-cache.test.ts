/**
 * The device KV cache against the CPU engine's LayerKvCache: the same fused qkv projection rows,
 * appended in two chunks, give identical per-head rows; flash prefill then reads q straight from the
 * fused rows (qRowStride) and the device cache, and matches the CPU reference. Skipped, with the
 * reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { fromBf16, toBf16 } from '../../src/backends/cuda/bf16.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16 } from '../../src/backends/cuda/transfer.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { countNaN, randomBf16Values, randomGenerator, referenceCausalAttention, relativeError } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA KV cache tests skipped: ${skip}`);

describe('device KV cache', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  test('fused qkv rows appended in chunks match LayerKvCache; prefill reads q from the fused rows', async () => {
    const { DeviceLayerKvCache } = await import('../../src/backends/cuda/kv-cache.js');
    const { FlashPrefill } = await import('../../src/backends/cuda/kernels/flash-prefill.js');
    const H = 8, Hkv = 2, D = 128, capacity = 300, chunks = [100, 37];
    const width = (H + 2 * Hkv) * D; // one token's fused q, k, v
    const rand = randomGenerator(31);
    const total = chunks[0] + chunks[1];
    const rows = randomBf16Values(total * width, rand, 2);
    const rowsDev = rt.pool.acquire(rows.length * 2);
    rt.cuda.upload(rowsDev.ptr, toBf16(rows));

    const cpu = new LayerKvCache(Hkv, D);
    const gpu = new DeviceLayerKvCache(rt, Hkv, D, capacity);
    let start = 0;
    for (const T of chunks) {
      const k = new Float32Array(T * Hkv * D), v = new Float32Array(T * Hkv * D);
      for (let t = 0; t < T; t++) {
        const row = (start + t) * width;
        k.set(rows.subarray(row + H * D, row + (H + Hkv) * D), t * Hkv * D);
        v.set(rows.subarray(row + (H + Hkv) * D, row + width), t * Hkv * D);
      }
      cpu.append(k, v, T, start);
      const base = rowsDev.ptr + BigInt(start * width * 2);
      gpu.appendTokens({ k: base + BigInt(H * D * 2), v: base + BigInt((H + Hkv) * D * 2), rowStride: width }, T);
      start += T;
    }
    assert.equal(gpu.length, total);
    rt.synchronize();
    const keys = new Uint16Array(Hkv * capacity * D), values = new Uint16Array(Hkv * capacity * D);
    rt.cuda.download(keys, gpu.keys.ptr);
    rt.cuda.download(values, gpu.values.ptr);
    const kf = fromBf16(keys), vf = fromBf16(values);
    for (let h = 0; h < Hkv; h++) {
      assert.deepEqual(kf.subarray(h * capacity * D, (h * capacity + total) * D), cpu.keys[h].subarray(0, total * D), `keys of head ${h}`);
      assert.deepEqual(vf.subarray(h * capacity * D, (h * capacity + total) * D), cpu.values[h].subarray(0, total * D), `values of head ${h}`);
    }
    assert.throws(() => gpu.appendTokens({ k: rowsDev.ptr, v: rowsDev.ptr, rowStride: width }, capacity), /exceed the capacity/);

    // Prefill of the second chunk: q from the fused rows, keys from the device cache.
    const T = chunks[1], queryStart = chunks[0], scale = 1 / Math.sqrt(D);
    const q = new Float32Array(T * H * D);
    for (let t = 0; t < T; t++) q.set(rows.subarray((queryStart + t) * width, (queryStart + t) * width + H * D), t * H * D);
    const ref = referenceCausalAttention(q, kf, vf, T, H, Hkv, D, capacity, queryStart, total, scale);
    const out = poisonedBf16(rt, T * H * D);
    new FlashPrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }).run({
      q: rowsDev.ptr + BigInt(queryStart * width * 2), qRowStride: width, k: gpu.keys.ptr, v: gpu.values.ptr,
      out: out.ptr, numQueries: T, queryStart, kvLen: total, kvStride: capacity, scale,
    });
    const got = downloadBf16(rt, out, T * H * D);
    assert.equal(countNaN(got), 0);
    assert.ok(relativeError(got, ref) < 1e-2, `rel err ${relativeError(got, ref)}`);
    gpu.release();
    rt.pool.release(out);
    rt.pool.release(rowsDev);
  });
});
