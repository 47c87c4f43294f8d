/**
 * Host ↔ device transfers of bf16 tensors held on the host as float32, through the runtime's pool.
 */
import { BF16_NAN_BITS, F32_NAN_BITS, fromBf16, toBf16 } from './bf16.js';
import type { DeviceBuffer } from './memory-pool.js';
import type { CudaRuntime } from './runtime.js';

/** Rounds `values` to bf16 and copies them into a new device buffer. */
export function uploadAsBf16(rt: CudaRuntime, values: Float32Array): DeviceBuffer {
  const buf = rt.pool.acquire(Math.max(2, values.length * 2));
  rt.cuda.upload(buf.ptr, toBf16(values));
  return buf;
}

/** A device buffer of `count` bf16 values filled with NaN (outputs are poisoned before each run). */
export function poisonedBf16(rt: CudaRuntime, count: number): DeviceBuffer {
  const buf = rt.pool.acquire(Math.max(2, count * 2));
  rt.cuda.fill16Async(buf.ptr, BF16_NAN_BITS, count, rt.stream);
  return buf;
}

/** A device buffer of `count` float32 values filled with NaN. */
export function poisonedF32(rt: CudaRuntime, count: number): DeviceBuffer {
  const buf = rt.pool.acquire(Math.max(4, count * 4));
  rt.cuda.fill32Async(buf.ptr, F32_NAN_BITS, count, rt.stream);
  return buf;
}

/** Waits for the stream, then reads `count` bf16 values as float32. */
export function downloadBf16(rt: CudaRuntime, buf: DeviceBuffer, count: number): Float32Array {
  rt.synchronize();
  const bits = new Uint16Array(count);
  rt.cuda.download(bits, buf.ptr);
  return fromBf16(bits);
}

/** Waits for the stream, then reads `count` float32 values. */
export function downloadF32(rt: CudaRuntime, buf: DeviceBuffer, count: number): Float32Array {
  rt.synchronize();
  const out = new Float32Array(count);
  rt.cuda.download(out, buf.ptr);
  return out;
}
