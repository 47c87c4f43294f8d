/**
 * A DeviceAttention that records what a trained model's attention layers see (bench/sparse-activations.ts):
 * wrapped around the model's real attention (dense), it copies, device to device and in stream order,
 * each full-attention layer's queries (after RoPE and any q-norm: the rows attend() receives) and the
 * layer's K/V cache rows (after RoPE) into buffers the bench owns, then lets the inner attention run,
 * so the forward pass is unchanged. Sliding-window layers are not recorded (the method plans keep
 * them dense).
 *
 * Only a whole prompt in one call is recorded (queries 0 .. n − 1 against an n-row cache): that is the
 * input a prefill method gets when the engine prefills in one chunk, which every prefill method of
 * the GPU registry asks for (requiresWholePrompt) or accepts.
 */
import type { DevicePtr } from '../src/backends/cuda/context.js';
import type { DeviceAttention, DeviceAttentionCall } from '../src/backends/cuda/device-attention.js';
import type { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import type { GraphDecodeSource } from '../src/backends/cuda/methods/contract.js';

/** One full-attention layer's prefill inputs, in bench-owned device memory. */
export interface CapturedLayer {
  layer: number;
  /** Query t, head h at q.ptr + 2·(t·qRowStride + h·D) bytes: the model's fused qkv rows [T, (H + 2·Hkv)·D], copied whole. */
  q: DeviceBuffer;
  qRowStride: number;
  /** T = n: the prompt length. */
  numQueries: number;
  /** [Hkv, capacity, D] keys and values, length n (a copy of the layer's cache). */
  cache: DeviceLayerKvCache;
}

/** The device operations the recorder needs (the CUDA runtime in the bench, a fake in the CPU tests). */
export interface RecorderDevice {
  acquire(bytes: number): DeviceBuffer;
  release(buf: DeviceBuffer): void;
  /** Queues a device-to-device copy on the stream the model runs on. */
  copy(dst: DevicePtr, src: DevicePtr, bytes: number): void;
  /** An empty cache of the given shape (length 0). */
  newCache(numKvHeads: number, headDim: number, capacity: number): DeviceLayerKvCache;
}

export class RecordingDeviceAttention implements DeviceAttention {
  readonly id: string;
  private armed = false;
  private captured: CapturedLayer[] = [];

  constructor(private readonly inner: DeviceAttention, private readonly device: RecorderDevice) {
    this.id = `recording(${inner.id})`;
  }

  /** Records the layers of the next whole-prompt call(s) until take(). */
  arm(): void {
    if (this.armed) throw new Error('attention recorder: already armed (take() the last recording first)');
    this.armed = true;
  }

  /** The recorded layers (ascending layer order as the model ran them); disarms. */
  take(): CapturedLayer[] {
    const layers = this.captured;
    this.captured = [];
    this.armed = false;
    return layers;
  }

  attend(call: DeviceAttentionCall): void {
    if (this.armed && !call.sliding) this.record(call);
    this.inner.attend(call);
  }

  denseDecodeSteps(): ((position: number) => void) | null {
    return this.inner.denseDecodeSteps?.() ?? null;
  }

  methodDecodeSteps(): GraphDecodeSource | null {
    return this.inner.methodDecodeSteps?.() ?? null;
  }

  /** Gives every recorded layer's buffers back (the recorder's own list included). */
  releaseAll(layers: CapturedLayer[]): void {
    for (const l of layers) {
      this.device.release(l.q);
      l.cache.release();
    }
  }

  private record(call: DeviceAttentionCall): void {
    const { cache, numQueries: n } = call;
    if (call.queryStart !== 0 || cache.length !== n) {
      throw new Error(`attention recorder: layer ${call.layer} got queries ${call.queryStart}..${call.queryStart + n} of a ${cache.length}-row cache; ` +
        'record a whole prompt in one call (prefill with chunk size ≥ the prompt length)');
    }
    if (this.captured.some((l) => l.layer === call.layer)) throw new Error(`attention recorder: layer ${call.layer} recorded twice (take() between prompts)`);
    const qBytes = n * call.qRowStride * 2;
    const q = this.device.acquire(qBytes);
    this.device.copy(q.ptr, call.q, qBytes);
    const copy = this.device.newCache(cache.numKvHeads, cache.headDim, cache.capacity);
    const cacheBytes = cache.numKvHeads * cache.capacity * cache.headDim * 2;
    this.device.copy(copy.keys.ptr, cache.keys.ptr, cacheBytes);
    this.device.copy(copy.values.ptr, cache.values.ptr, cacheBytes);
    copy.length = n; // rows were copied in, not appended
    this.captured.push({ layer: call.layer, q, qRowStride: call.qRowStride, numQueries: n, cache: copy });
  }
}
