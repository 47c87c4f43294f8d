/**
 * The attention recorder of bench/sparse-activations.ts on the GPU, with the shipped organism
 * (models/organism): a whole-prompt prefill records every full-attention layer, the recorded K/V rows
 * equal the sequence's own cache bit for bit, and dense attention over the recorded q/k/v gives bit
 * for bit the output the model's attention wrote in that layer (so the copy holds post-RoPE queries,
 * taken at the moment attention reads them). Skipped, with the reason printed, without a CUDA device.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CapturedLayer, RecordingDeviceAttention } from '../../bench/attention-recorder.js';
import type { DeviceAttention, DeviceAttentionCall } from '../../src/backends/cuda/device-attention.js';
import type { DeviceBuffer } from '../../src/backends/cuda/memory-pool.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { REPO_ROOT } from '../helpers/repo-root.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA attention recorder tests');

describe('attention recorder on the organism', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  test('records every full layer; K/V equal the cache, dense over the recording equals the model\'s attention output', async () => {
    const { DenseDeviceAttention } = await import('../../src/backends/cuda/device-attention.js');
    const { DeviceLayerKvCache } = await import('../../src/backends/cuda/kv-cache.js');
    const { CudaTransformerModel } = await import('../../src/backends/cuda/model.js');
    const { StoreWeightSource } = await import('../../src/backends/cuda/weight-source.js');
    const ckpt = loadCheckpoint(join(REPO_ROOT, 'models', 'organism'));
    const c = ckpt.config;
    const n = 777; // not a multiple of 64: the flash kernel's last partial block
    const outBytes = n * c.numHeads * c.headDim * 2;
    const dense = new DenseDeviceAttention(rt, c);
    // The model's own attention output per layer, copied right after dense wrote it.
    const outputs = new Map<number, DeviceBuffer>();
    const saving: DeviceAttention = {
      id: 'dense',
      attend: (call: DeviceAttentionCall) => {
        dense.attend(call);
        if (call.numQueries !== n) return;
        const copy = rt.pool.acquire(outBytes);
        rt.cuda.copyDeviceAsync(copy.ptr, call.out, outBytes, rt.stream);
        outputs.set(call.layer, copy);
      },
    };
    const recorder = new RecordingDeviceAttention(saving, {
      acquire: (bytes) => rt.pool.acquire(bytes),
      release: (buf) => rt.pool.release(buf),
      copy: (dst, src, bytes) => rt.cuda.copyDeviceAsync(dst, src, bytes, rt.stream),
      newCache: (Hkv, D, capacity) => new DeviceLayerKvCache(rt, Hkv, D, capacity),
    });
    const model = new CudaTransformerModel(rt, c, new StoreWeightSource(rt, ckpt.weights), recorder);
    const ids = ckpt.tokenizer.encode('The value for key a1b2 is: 42. '.repeat(80)).slice(0, n);
    assert.equal(ids.length, n);
    const seq = model.newSequence(n);
    let captured: CapturedLayer[] = [];
    try {
      recorder.arm();
      rt.pool.release(model.prefill(seq, ids, n));
      captured = recorder.take();
      rt.synchronize();
      const full = c.layerTypes.flatMap((t, l) => (t === 'full' ? [l] : []));
      assert.deepEqual(captured.map((l) => l.layer), full);
      const bytes = (ptr: bigint, count: number): Uint16Array => {
        const host = new Uint16Array(count);
        rt.cuda.download(host, ptr);
        return host;
      };
      const cacheWords = c.numKvHeads * n * c.headDim;
      const fresh = rt.pool.acquire(outBytes);
      try {
        for (const l of captured) {
          assert.equal(l.numQueries, n);
          assert.equal(l.cache.length, n);
          assert.deepEqual(bytes(l.cache.keys.ptr, cacheWords), bytes(seq.caches[l.layer].keys.ptr, cacheWords), `layer ${l.layer} keys`);
          assert.deepEqual(bytes(l.cache.values.ptr, cacheWords), bytes(seq.caches[l.layer].values.ptr, cacheWords), `layer ${l.layer} values`);
          dense.attend({ layer: l.layer, sliding: false, q: l.q.ptr, qRowStride: l.qRowStride, numQueries: n, queryStart: 0, cache: l.cache, out: fresh.ptr });
          rt.synchronize();
          const words = n * c.numHeads * c.headDim;
          assert.deepEqual(bytes(fresh.ptr, words), bytes(outputs.get(l.layer)!.ptr, words), `layer ${l.layer}: dense over the recording vs the model's output`);
        }
      } finally {
        rt.pool.release(fresh);
      }
    } finally {
      rt.synchronize();
      recorder.releaseAll(captured);
      seq.release();
      for (const buf of outputs.values()) rt.pool.release(buf);
      model.dispose();
    }
  });
});
