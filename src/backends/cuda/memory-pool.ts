/**
 * Device memory pool: freed blocks are kept per rounded size and handed out again, so per-layer and
 * per-step temporaries cost no cuMemAlloc/cuMemFree (each of which synchronises the device).
 * Sizes are rounded up to a multiple of 2 MiB above 2 MiB and to a power of two below, which bounds
 * waste while keeping the number of size classes small.
 */
import type { CudaContext, DevicePtr } from './context.js';

const SMALL_LIMIT = 2 * 1024 * 1024;
const MIN_BLOCK = 256;

export function roundBlockSize(bytes: number): number {
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) throw new Error(`memory pool: bad request of ${bytes} bytes`);
  if (bytes <= MIN_BLOCK) return MIN_BLOCK;
  if (bytes <= SMALL_LIMIT) return 2 ** Math.ceil(Math.log2(bytes));
  return Math.ceil(bytes / SMALL_LIMIT) * SMALL_LIMIT;
}

/** A block from the pool: `bytes` is what was asked for, `capacity` what was reserved. */
export interface DeviceBuffer {
  readonly ptr: DevicePtr;
  readonly bytes: number;
  readonly capacity: number;
}

export interface PoolStats {
  /** Bytes handed out and not yet released. */
  inUseBytes: number;
  /** Bytes kept for reuse. */
  cachedBytes: number;
  allocations: number;
  reuses: number;
}

export class DeviceMemoryPool {
  private readonly freeBySize = new Map<number, DevicePtr[]>();
  private readonly live = new Map<DevicePtr, number>();
  private stats: PoolStats = { inUseBytes: 0, cachedBytes: 0, allocations: 0, reuses: 0 };

  constructor(private readonly cuda: Pick<CudaContext, 'alloc' | 'free'>) {}

  acquire(bytes: number): DeviceBuffer {
    const capacity = roundBlockSize(bytes);
    const list = this.freeBySize.get(capacity);
    let ptr = list?.pop();
    if (ptr !== undefined) {
      this.stats.reuses++;
      this.stats.cachedBytes -= capacity;
    } else {
      ptr = this.cuda.alloc(capacity);
      this.stats.allocations++;
    }
    this.live.set(ptr, capacity);
    this.stats.inUseBytes += capacity;
    return { ptr, bytes, capacity };
  }

  /** Returns a block for reuse; the caller must not touch it afterwards (no work may still use it). */
  release(buffer: DeviceBuffer): void {
    const capacity = this.live.get(buffer.ptr);
    if (capacity === undefined) throw new Error('memory pool: release of a block the pool did not hand out (or released twice)');
    this.live.delete(buffer.ptr);
    this.stats.inUseBytes -= capacity;
    this.stats.cachedBytes += capacity;
    let list = this.freeBySize.get(capacity);
    if (!list) this.freeBySize.set(capacity, (list = []));
    list.push(buffer.ptr);
  }

  /** Frees every cached block back to the driver (live blocks stay). */
  trim(): void {
    for (const list of this.freeBySize.values()) for (const ptr of list) this.cuda.free(ptr);
    this.freeBySize.clear();
    this.stats.cachedBytes = 0;
  }

  getStats(): PoolStats {
    return { ...this.stats };
  }
}
