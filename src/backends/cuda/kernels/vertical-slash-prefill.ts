/**
 * Launcher for vertical-slash-prefill.cu: causal attention of the whole prompt where each (query head,
 * 64-row query block) visits only its listed key ranges and gathered columns (a DeviceVerticalSlashIndex
 * from vertical-slash-index.ts), bf16 in, fp32 accumulate, bf16 out.
 */
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { PrefillShape } from './flash-prefill.js';
import type { DeviceVerticalSlashIndex } from './vertical-slash-index.js';
import { PATTERN_BLOCK } from './vertical-slash-index.js';
import { checkQueryRowStride, verticalSlashShapeProblem } from './vertical-slash-estimate.js';

const LOG2E = 1.4426950408889634;
/** The launcher's default row tiling (docs/perf.md, "Vertical-slash prefill"). */
export const DEFAULT_VERTICAL_SLASH_ROW_TILES: VerticalSlashRowTiles = 1;

export interface VerticalSlashPrefillArgs {
  /** [n, qRowStride] bf16 queries of the whole prompt (head h at h·D); row t is position t. */
  q: DevicePtr;
  qRowStride?: number;
  /** [Hkv, kvStride, D] bf16 keys and values; rows [0, n) hold positions 0..n-1. */
  k: DevicePtr;
  v: DevicePtr;
  kvStride: number;
  /** [n, H, D] bf16 output. */
  out: DevicePtr;
  index: DeviceVerticalSlashIndex;
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
      .kernel('vs_prefill', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    return this.kernel;
  }

  run(a: VerticalSlashPrefillArgs): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const idx = a.index;
    if (idx.numHeads !== H) throw new Error(`vertical-slash prefill: index is for ${idx.numHeads} heads, the shape has ${H}`);
    if (idx.n > a.kvStride) throw new Error(`vertical-slash prefill: n=${idx.n} exceeds kvStride=${a.kvStride}`);
    for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v], ['out', a.out]] as const) {
      if (ptr % 16n !== 0n) throw new Error(`vertical-slash prefill: ${name} must be 16-byte aligned`);
    }
    const qRowStride = a.qRowStride ?? H * D;
    checkQueryRowStride('vertical-slash prefill', this.shape, qRowStride);
    this.prepare().launch(
      { grid: [idx.numBlocks, H, 1], block: [128 / this.mTiles, 1, 1], sharedBytes: verticalSlashPrefillSharedBytes(D), stream: this.rt.stream },
      [a.q, a.k, a.v, a.out, idx.ranges, idx.rangeCount, idx.colStart, idx.colList, idx.n, H, Hkv, qRowStride, a.kvStride,
        idx.rangeCap, idx.rangeSlotsPerHead, a.scale * LOG2E],
    );
  }
}
