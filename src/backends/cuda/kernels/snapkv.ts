/**
 * Launchers for snapkv.cu: the observation-window importance of every prompt key, the kept-row
 * selection of SnapKV (uniform per KV head) and Ada-SnapKV (a per-head minimum, then the layer's
 * remaining budget by score across heads), and the gather of kept rows into rows [0, keep_h).
 * The per-head kept counts come back to the host once per layer (Hkv integers).
 */
import type { DevicePtr } from '../context.js';
import type { DeviceLayerKvCache } from '../kv-cache.js';
import type { DeviceBuffer } from '../memory-pool.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { SegmentLists } from './segment-decode.js';

const QUERIES = 128;
const TILE = 64;
const SELECT_THREADS = 1024;
const LOG2E = 1.4426950408889634;

export interface SnapKvShape {
  numHeads: number; // H
  numKvHeads: number; // Hkv
  headDim: number; // D: 64 or 128
}

export type WindowAggregation = 'mean' | 'max';

export interface WindowImportanceArgs {
  /** [W, H, D] bf16 rotated queries of the last W prompt tokens. */
  windowQueries: DevicePtr;
  windowLength: number; // W
  promptLength: number; // n: the cache holds rows [0, n)
  cache: DeviceLayerKvCache;
  scale: number;
  aggregation: WindowAggregation;
  kernelSize: number;
  prefixTokens: number;
  localWindow: number;
}

/** Which rows each KV head keeps: ascending row indices (rows[h·n + i], i < counts[h]) on the device. */
export interface KeptRows {
  /** [Hkv, n] int32. */
  rows: DeviceBuffer;
  /** [Hkv] int32. */
  counts: DeviceBuffer;
  n: number;
}

export class SnapKvKernels {
  private kernels: Record<'stats' | 'scores' | 'reduce' | 'pool' | 'select' | 'segments' | 'gather' | 'place', CudaKernel> | null = null;

  constructor(private readonly rt: CudaRuntime, readonly shape: SnapKvShape) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (D !== 64 && D !== 128) throw new Error(`snapkv: head dim ${D} unsupported (64 or 128)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`snapkv: ${H} query heads are not a multiple of ${Hkv} KV heads`);
  }

  prepare() {
    if (!this.kernels) {
      const mod = this.rt.module('snapkv.cu', { HEAD_DIM: this.shape.headDim });
      this.kernels = {
        stats: mod.kernel('snap_window_stats', ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']),
        scores: mod.kernel('snap_window_scores', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32']),
        reduce: mod.kernel('snap_reduce_partials', ['ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']),
        pool: mod.kernel('snap_pool_force', ['ptr', 'ptr', 'i32', 'i32', 'i32', 'i32']),
        select: mod.kernel('snap_select_rows', ['ptr', 'i32', 'i32', 'i32', 'ptr', 'i32', 'ptr', 'i32', 'ptr', 'i32', 'ptr']),
        segments: mod.kernel('snap_write_segments', ['ptr', 'ptr', 'i32', 'i32']),
        gather: mod.kernel('snap_gather_rows', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32']),
        place: mod.kernel('snap_place_rows', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32']),
      };
    }
    return this.kernels;
  }

  /**
   * Pooled, forced importance of every prompt key per KV head: a new [Hkv, n] fp32 buffer (the
   * caller releases it). As windowImportance + averagePool + forceKeep of the CPU methods.
   */
  windowImportance(a: WindowImportanceArgs): DeviceBuffer {
    const { numHeads: H, numKvHeads: Hkv } = this.shape;
    const g = H / Hkv, W = a.windowLength, n = a.promptLength;
    if (!(W >= 1) || W > n) throw new Error(`snapkv: window of ${W} queries for a ${n}-token prompt`);
    if (a.cache.length < n) throw new Error(`snapkv: cache holds ${a.cache.length} rows, expected the ${n}-token prompt`);
    if (a.kernelSize % 2 !== 1) throw new Error(`snapkv: kernelSize must be odd, got ${a.kernelSize}`);
    if (a.windowQueries % 16n !== 0n) throw new Error('snapkv: window queries must be 16-byte aligned');
    const k = this.prepare();
    const stream = this.rt.stream;
    const qBlocks = Math.ceil((g * W) / QUERIES);
    const tiles = Math.ceil(n / TILE);
    // About three resident blocks per multiprocessor over the whole grid.
    const wanted = Math.ceil((3 * this.rt.cuda.info.multiprocessors) / (qBlocks * Hkv));
    const keyChunk = Math.ceil(tiles / Math.max(1, Math.min(tiles, wanted))) * TILE;
    const keySplits = Math.ceil(n / keyChunk);
    const stats = this.rt.pool.acquire(keySplits * H * W * 8);
    const impPart = this.rt.pool.acquire(qBlocks * Hkv * n * 4);
    const imp = this.rt.pool.acquire(Hkv * n * 4);
    const pooled = this.rt.pool.acquire(Hkv * n * 4);
    const mode = a.aggregation === 'mean' ? 0 : 1;
    const scaleLog2 = a.scale * LOG2E;
    const grid: [number, number, number] = [qBlocks, Hkv, keySplits];
    k.stats.launch({ grid, block: [QUERIES, 1, 1], sharedBytes: 0, stream },
      [a.windowQueries, a.cache.keys.ptr, stats.ptr, H, g, W, n, a.cache.capacity, keyChunk, scaleLog2]);
    k.scores.launch({ grid, block: [QUERIES, 1, 1], sharedBytes: 0, stream },
      [a.windowQueries, a.cache.keys.ptr, stats.ptr, impPart.ptr, H, g, W, n, a.cache.capacity, keyChunk, keySplits, scaleLog2, mode]);
    k.reduce.launch({ grid: [Math.ceil((Hkv * n) / 256), 1, 1], block: [256, 1, 1], sharedBytes: 0, stream },
      [impPart.ptr, imp.ptr, Hkv, n, W, g, qBlocks, mode]);
    k.pool.launch({ grid: [Math.ceil(n / 256), Hkv, 1], block: [256, 1, 1], sharedBytes: 0, stream },
      [imp.ptr, pooled.ptr, n, a.kernelSize, a.prefixTokens, a.localWindow]);
    for (const b of [stats, impPart, imp]) this.rt.pool.release(b);
    return pooled;
  }

  /** Top `capacity` rows of every KV head (SnapKV), ascending. importance: [Hkv, n] fp32. */
  selectUniform(importance: DevicePtr, n: number, capacity: number): KeptRows {
    const Hkv = this.shape.numKvHeads;
    const kept = this.allocKept(n);
    this.prepare().select.launch(
      { grid: [Hkv, 1, 1], block: [SELECT_THREADS, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [importance, n, n, capacity, 0n, 0, 0n, n, kept.rows.ptr, n, kept.counts.ptr],
    );
    return kept;
  }

  /**
   * Ada-SnapKV's rows (adaptiveSelection): every head its top `minimum`, then the layer's remaining
   * Hkv·capacity − Hkv·minimum rows by score over all heads' leftovers (ties: lower head, then lower
   * row: the flat index), each head's rows ascending.
   */
  selectAdaptive(importance: DevicePtr, n: number, capacity: number, minimum: number): KeptRows {
    const Hkv = this.shape.numKvHeads;
    const { select } = this.prepare();
    const stream = this.rt.stream;
    const mask = this.rt.pool.acquire(Hkv * n);
    this.rt.cuda.fill32Async(mask.ptr, 0, Math.ceil(Hkv * n / 4), stream);
    const cfg = { grid: [Hkv, 1, 1] as [number, number, number], block: [SELECT_THREADS, 1, 1] as [number, number, number], sharedBytes: 0, stream };
    select.launch(cfg, [importance, n, n, minimum, 0n, 0, mask.ptr, n, 0n, 0, 0n]);
    const remaining = Math.max(0, Hkv * capacity - Hkv * minimum);
    if (remaining > 0) {
      // One row over the flat [Hkv·n] scores; rows already kept are not candidates.
      select.launch({ ...cfg, grid: [1, 1, 1] }, [importance, Hkv * n, Hkv * n, remaining, mask.ptr, 1, mask.ptr, Hkv * n, 0n, 0, 0n]);
    }
    // Compaction: every row whose mask is set, in ascending order (k = n takes all candidates).
    const kept = this.allocKept(n);
    select.launch(cfg, [importance, n, n, n, mask.ptr, 0, 0n, n, kept.rows.ptr, n, kept.counts.ptr]);
    this.rt.pool.release(mask);
    return kept;
  }

  /** Reads the per-head counts back (waits for the stream). */
  readCounts(kept: KeptRows): Int32Array {
    this.rt.synchronize();
    const counts = new Int32Array(this.shape.numKvHeads);
    this.rt.cuda.download(counts, kept.counts.ptr);
    return counts;
  }

  /**
   * Moves each head's kept rows (K and V) into rows [0, counts[h]) in their ascending order and
   * writes the segment list [0, counts[h]) per KV head. maxKeep: the largest count.
   */
  compactCache(cache: DeviceLayerKvCache, kept: KeptRows, maxKeep: number, segments: SegmentLists): void {
    const { numKvHeads: Hkv, headDim: D } = this.shape;
    if (segments.units !== Hkv || segments.maxSegments < 1) throw new Error('snapkv: need one segment per KV head');
    const k = this.prepare();
    const stream = this.rt.stream;
    if (maxKeep > 0) {
      const bytes = Hkv * maxKeep * D * 2;
      const sk = this.rt.pool.acquire(bytes), sv = this.rt.pool.acquire(bytes);
      const grid: [number, number, number] = [Math.ceil((maxKeep * D) / 8 / 256), Hkv, 1];
      k.gather.launch({ grid, block: [256, 1, 1], sharedBytes: 0, stream },
        [cache.keys.ptr, cache.values.ptr, kept.rows.ptr, kept.counts.ptr, sk.ptr, sv.ptr, cache.capacity, kept.n, maxKeep]);
      k.place.launch({ grid, block: [256, 1, 1], sharedBytes: 0, stream },
        [cache.keys.ptr, cache.values.ptr, kept.counts.ptr, sk.ptr, sv.ptr, cache.capacity, maxKeep]);
      this.rt.pool.release(sk);
      this.rt.pool.release(sv);
    }
    k.segments.launch({ grid: [1, 1, 1], block: [32 * Math.ceil(Hkv / 32), 1, 1], sharedBytes: 0, stream },
      [kept.counts.ptr, segments.ptr, segments.stride, Hkv]);
  }

  /** Segment list [0, rows) for every KV head, written on the stream (no host copy). */
  writeUniformSegments(rows: number, segments: SegmentLists): void {
    const Hkv = this.shape.numKvHeads;
    if (segments.units !== Hkv || segments.maxSegments < 1) throw new Error('snapkv: need one segment per KV head');
    const counts = this.rt.pool.acquire(Hkv * 4);
    this.rt.cuda.fill32Async(counts.ptr, rows, Hkv, this.rt.stream);
    this.prepare().segments.launch({ grid: [1, 1, 1], block: [32 * Math.ceil(Hkv / 32), 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [counts.ptr, segments.ptr, segments.stride, Hkv]);
    this.rt.pool.release(counts);
  }

  releaseKept(kept: KeptRows): void {
    this.rt.pool.release(kept.rows);
    this.rt.pool.release(kept.counts);
  }

  private allocKept(n: number): KeptRows {
    const Hkv = this.shape.numKvHeads;
    return { rows: this.rt.pool.acquire(Hkv * n * 4), counts: this.rt.pool.acquire(Hkv * 4), n };
  }
}
