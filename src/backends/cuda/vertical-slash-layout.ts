/**
 * Host-side pieces of the GPU Vertical-Slash index (kernels/vertical-slash-index.cu): where each
 * query block's key ranges live, and device buffers that grow to the largest request and are then
 * reused (so a method object allocates once per prompt length, not once per layer).
 *
 * Range slots: block m of a head owns min(C, m + 2) (start, end) slots, C the largest slash count.
 * Ranges are disjoint, do not touch, are at least 64 wide and lie inside [0, 64(m + 2)), so at most
 * m + 2 of them exist; each comes from at least one kept diagonal, so at most C.
 */
import type { DeviceBuffer } from './memory-pool.js';
import type { CudaRuntime } from './runtime.js';

/** Slot offset of block m's ranges inside its head (the kernels' vs_range_offset). */
export function verticalSlashRangeOffset(m: number, C: number): number {
  const t = Math.min(m, Math.max(C - 1, 0));
  return (t * t + 3 * t) / 2 + (m - t) * C;
}

/** Range slots one head needs for `numBlocks` query blocks. */
export function verticalSlashRangeSlots(numBlocks: number, C: number): number {
  return verticalSlashRangeOffset(numBlocks, C);
}

/** A pool buffer that is replaced by a larger one when a request outgrows it (contents not kept). */
export class GrowableDeviceBuffer {
  private buffer: DeviceBuffer | null = null;

  constructor(private readonly rt: CudaRuntime, readonly label: string) {}

  /** Whether ensure(bytes) would keep the current buffer (no replacement, so nothing is freed). */
  fits(bytes: number): boolean {
    return this.buffer !== null && this.buffer.capacity >= Math.max(16, bytes);
  }

  /** A buffer of at least `bytes` bytes. Only call when no queued work still uses the old one. */
  ensure(bytes: number): DeviceBuffer {
    const want = Math.max(16, bytes);
    if (this.buffer && this.buffer.capacity >= want) return this.buffer;
    if (this.buffer) this.rt.pool.release(this.buffer);
    this.buffer = this.rt.pool.acquire(want);
    return this.buffer;
  }

  get current(): DeviceBuffer {
    if (!this.buffer) throw new Error(`${this.label}: used before it was sized`);
    return this.buffer;
  }

  release(): void {
    if (this.buffer) this.rt.pool.release(this.buffer);
    this.buffer = null;
  }
}
