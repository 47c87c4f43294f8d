/**
 * Launcher for vertical-slash-prefill.cu: causal attention of the whole prompt where each (query head,
 * 64-row query block) visits only its listed key ranges and gathered columns (a DeviceVerticalSlashIndex
 * from vertical-slash-index.ts), bf16 in, fp32 accumulate, bf16 out.
 */
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { PrefillShape } from './flash-prefill.js';
import type { VerticalSlashKernelIndex } from './vertical-slash-index.js';
import { PATTERN_BLOCK } from './vertical-slash-index.js';
import { checkQueryRowStride, verticalSlashShapeProblem } from './vertical-slash-estimate.js';

const LOG2E = 1.4426950408889634;
/** The launcher's default row tiling (docs/perf.md, "Vertical-slash prefill"). */
export const DEFAULT_VERTICAL_SLASH_ROW_TILES: VerticalSlashRowTiles = 1;

export interface VerticalSlashPrefillArgs {
  /** [T, qRowStride] bf16 queries (head h at h·D); query t sits at position queryStart + t. */
  q: DevicePtr;
  qRowStride?: number;
  /** [Hkv, kvStride, D] bf16 keys and values; rows [0, queryStart + T) hold positions 0.. in order. */
  k: DevicePtr;
  v: DevicePtr;
  kvStride: number;
  /** [T, H, D] bf16 output. */
  out: DevicePtr;
  numQueries: number; // T
  queryStart?: number; // default 0 (the whole prompt)
  index: VerticalSlashKernelIndex;
  /**
   * Per-row window (sink + local): query t sees a range key only if it is below sinkCount or at least
   * rowLow[t] ([T] int32 on the device). Absent: every range key up to the query's position.
   */
  rowWindow?: { rowLow: DevicePtr; sinkCount: number };
  scale: number;
}

/**
 * Rows per warp: 1 = four warps of 16 rows (Q fragments in registers), 2 = two warps of 32 rows (each
 * K/V fragment serves both row tiles; Q re-read from shared memory).
 */
export type VerticalSlashRowTiles = 1 | 2;

/** Dynamic shared memory per block: the Q tile and two stages of K and V tiles. */
export function verticalSlashPrefillSharedBytes(headDim: number): number {
  return 5 * PATTERN_BLOCK * (headDim + 8) * 2;
}

export class VerticalSlashFlashPrefill {
  private kernel: CudaKernel | null = null;

  constructor(private readonly rt: CudaRuntime, readonly shape: PrefillShape, readonly mTiles: VerticalSlashRowTiles = DEFAULT_VERTICAL_SLASH_ROW_TILES) {
    const problem = verticalSlashShapeProblem(shape);
    if (problem) throw new Error(`vertical-slash prefill: ${problem}`);
    if (mTiles !== 1 && mTiles !== 2) throw new Error(`vertical-slash prefill: mTiles must be 1 or 2 (got ${String(mTiles)})`);
  }

  prepare(): CudaKernel {
    this.kernel ??= this.rt.module('vertical-slash-prefill.cu', { HEAD_DIM: this.shape.headDim, M_TILES: this.mTiles })
      .kernel('vs_prefill', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    return this.kernel;
  }

  run(a: VerticalSlashPrefillArgs): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const idx = a.index;
    const T = a.numQueries, queryStart = a.queryStart ?? 0;
    if (!Number.isInteger(T) || T < 1) throw new Error(`vertical-slash prefill: numQueries must be a positive integer (got ${T})`);
    if (!Number.isInteger(queryStart) || queryStart < 0 || queryStart + T > a.kvStride) {
      throw new Error(`vertical-slash prefill: need 0 <= queryStart and queryStart + T <= kvStride (got ${queryStart}, ${T}, ${a.kvStride})`);
    }
    if (idx.numHeads !== H) throw new Error(`vertical-slash prefill: index is for ${idx.numHeads} heads, the shape has ${H}`);
    if (idx.numBlocks !== Math.ceil(T / PATTERN_BLOCK)) {
      throw new Error(`vertical-slash prefill: index has ${idx.numBlocks} query blocks, ${T} queries need ${Math.ceil(T / PATTERN_BLOCK)}`);
    }
    for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v], ['out', a.out]] as const) {
      if (ptr % 16n !== 0n) throw new Error(`vertical-slash prefill: ${name} must be 16-byte aligned`);
    }
    const qRowStride = a.qRowStride ?? H * D;
    checkQueryRowStride('vertical-slash prefill', this.shape, qRowStride);
    const sinkCount = a.rowWindow?.sinkCount ?? 0;
    if (!Number.isInteger(sinkCount) || sinkCount < 0) throw new Error(`vertical-slash prefill: sinkCount must be a non-negative integer (got ${sinkCount})`);
    this.prepare().launch(
      { grid: [idx.numBlocks, H, 1], block: [128 / this.mTiles, 1, 1], sharedBytes: verticalSlashPrefillSharedBytes(D), stream: this.rt.stream },
      [a.q, a.k, a.v, a.out, idx.ranges, idx.rangeCount, idx.colStart, idx.colList, a.rowWindow?.rowLow ?? 0n, sinkCount, T, queryStart,
        H, Hkv, qRowStride, a.kvStride, idx.rangeCap, idx.rangeSlotsPerHead, a.scale * LOG2E],
    );
  }
}
