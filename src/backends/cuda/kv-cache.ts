/**
 * A layer's KV cache in device memory, in the layout the attention kernels read and the CPU engine's
 * LayerKvCache uses: per KV head, rows of D bf16 values, row r = position r until eviction.
 *   keys, values: [Hkv, capacity, D] bf16
 * Capacity is fixed at creation (the longest context the run needs): growing would mean copying every
 * head, which the engine avoids by sizing once.
 */
import type { DevicePtr } from './context.js';
import type { DeviceBuffer } from './memory-pool.js';
import type { CudaKernel } from './module.js';
import type { CudaRuntime } from './runtime.js';

export interface KvSource {
  /** Key of token t, head h at k + 2·(t·rowStride + h·D) bytes. */
  k: DevicePtr;
  /** Value of token t, head h at v + 2·(t·rowStride + h·D) bytes. */
  v: DevicePtr;
  /** Elements between consecutive tokens (Hkv·D for packed [T, Hkv, D]; (H + 2·Hkv)·D for fused qkv rows). */
  rowStride: number;
}

export class DeviceLayerKvCache {
  readonly keys: DeviceBuffer;
  readonly values: DeviceBuffer;
  /** Rows every head holds. */
  length = 0;
  private readonly append: CudaKernel;

  constructor(private readonly rt: CudaRuntime, readonly numKvHeads: number, readonly headDim: number, readonly capacity: number) {
    if (!(numKvHeads > 0) || !(capacity > 0) || headDim % 8 !== 0) {
      throw new Error(`device KV cache: need Hkv > 0, capacity > 0, D a multiple of 8 (got ${numKvHeads}, ${capacity}, ${headDim})`);
    }
    const bytes = numKvHeads * capacity * headDim * 2;
    this.keys = rt.pool.acquire(bytes);
    this.values = rt.pool.acquire(bytes);
    this.append = rt.module('kv-append.cu', {}).kernel('kv_append', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  }

  /** Appends T tokens at rows length .. length + T - 1 (on the runtime's stream). */
  appendTokens(src: KvSource, numTokens: number): void {
    const { numKvHeads: Hkv, headDim: D } = this;
    if (!(numTokens > 0)) throw new Error(`device KV cache: numTokens must be positive (got ${numTokens})`);
    if (this.length + numTokens > this.capacity) {
      throw new Error(`device KV cache: ${this.length} + ${numTokens} rows exceed the capacity of ${this.capacity}`);
    }
    if (src.rowStride < Hkv * D || src.rowStride % 8 !== 0) throw new Error(`device KV cache: bad row stride ${src.rowStride}`);
    if (src.k % 16n !== 0n || src.v % 16n !== 0n) throw new Error('device KV cache: sources must be 16-byte aligned');
    const chunks = numTokens * Hkv * (D / 8);
    this.append.launch(
      { grid: [Math.ceil(chunks / 256), 1, 1], block: [256, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [src.k, src.v, this.keys.ptr, this.values.ptr, numTokens, Hkv, D, src.rowStride, this.capacity, this.length],
    );
    this.length += numTokens;
  }

  /** Returns the buffers to the pool; the cache must not be used afterwards. */
  release(): void {
    this.rt.pool.release(this.keys);
    this.rt.pool.release(this.values);
  }
}
