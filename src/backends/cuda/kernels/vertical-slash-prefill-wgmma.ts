/**
 * Launcher for vertical-slash-prefill-wgmma.cu: the Hopper (sm_90a, wgmma) Vertical-Slash prefill, same
 * arguments, device index and results as the mma.sync kernel of vertical-slash-prefill.ts, head dims
 * 64 and 128. A CTA is 128 query rows (two pattern blocks, one per consumer warpgroup) of one head;
 * the producer warpgroup streams each block's range tiles and gathers its column tiles. The index is
 * read as built (no step list): VerticalSlashFlashPrefill runs this when given a `wgmma` option, and
 * by default on Hopper with four stages (verticalSlashKernelChoice, autoRunsMma; docs/perf.md,
 * Vertical-slash prefill, wgmma variant: measured on an H100).
 */
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import { wgmmaPrefillUnsupported } from './flash-prefill-wgmma.js';
import type { PrefillShape } from './flash-prefill.js';
import { checkVerticalSlashPrefillArgs, type VerticalSlashPrefillArgs } from './vertical-slash-prefill-args.js';
import { verticalSlashShapeProblem } from './vertical-slash-estimate.js';
import { PATTERN_BLOCK } from './vertical-slash-index.js';

const LOG2E = 1.4426950408889634;
const THREADS = 384; // two consumer warpgroups, the producer warpgroup
/** Query rows per CTA: two 64-row pattern blocks. */
export const VERTICAL_SLASH_WGMMA_CTA_ROWS = 2 * PATTERN_BLOCK;
/** Keys per step: the index's range grain, so a range tile never crosses its range's end. */
const BLOCK_N = PATTERN_BLOCK;

export interface VerticalSlashWgmmaTiling {
  /** K and V stages in shared memory (2-4). */
  stages: 2 | 3 | 4;
}

/** Three stages, as the block-sparse wgmma kernel's default (gathered tiles: more in flight). */
export const DEFAULT_VERTICAL_SLASH_WGMMA_TILING: VerticalSlashWgmmaTiling = { stages: 3 };

/** e.g. 'wgmma-s3'. */
export function verticalSlashWgmmaLabel(t: VerticalSlashWgmmaTiling): string {
  return `wgmma-s${t.stages}`;
}

/** Defaults filled in, then checked; an error names the bad field. */
export function resolveVerticalSlashWgmmaTiling(t: Partial<VerticalSlashWgmmaTiling>): VerticalSlashWgmmaTiling {
  const r = { ...DEFAULT_VERTICAL_SLASH_WGMMA_TILING, ...t };
  if (![2, 3, 4].includes(r.stages)) throw new Error(`vertical-slash wgmma: stages must be 2, 3 or 4 (got ${String(r.stages)})`);
  return r;
}

/**
 * Dynamic shared memory of one CTA: the 128-row Q tile, the K and V stages of 64 keys, the mbarriers
 * (1 + 4 per stage), 1 KB of alignment slack (swizzle atoms are 1024-byte aligned).
 */
export function verticalSlashWgmmaSharedBytes(headDim: number, t: VerticalSlashWgmmaTiling): number {
  const rowBytes = headDim * 2;
  return (VERTICAL_SLASH_WGMMA_CTA_ROWS + 2 * t.stages * BLOCK_N) * rowBytes + 8 * (1 + 4 * t.stages) + 1024;
}

export class VerticalSlashWgmmaPrefill {
  readonly tiling: VerticalSlashWgmmaTiling;
  private kernel: CudaKernel | null = null;

  constructor(private readonly rt: CudaRuntime, readonly shape: PrefillShape, tiling: Partial<VerticalSlashWgmmaTiling> = {}) {
    const problem = verticalSlashShapeProblem(shape);
    if (problem) throw new Error(`vertical-slash wgmma: ${problem}`);
    const reason = wgmmaPrefillUnsupported(rt.cuda.info, shape.headDim);
    if (reason) throw new Error(`vertical-slash ${reason}`);
    this.tiling = resolveVerticalSlashWgmmaTiling(tiling);
  }

  /** Compiles (or loads from the cache) the kernel; run() calls it on first use. */
  prepare(): CudaKernel {
    const shared = verticalSlashWgmmaSharedBytes(this.shape.headDim, this.tiling);
    if (shared > this.rt.cuda.info.maxSharedPerBlockOptin) {
      throw new Error(`vertical-slash ${verticalSlashWgmmaLabel(this.tiling)}: needs ${shared} B of shared memory, the device allows ${this.rt.cuda.info.maxSharedPerBlockOptin}`);
    }
    this.kernel ??= this.rt.module('vertical-slash-prefill-wgmma.cu', { HEAD_DIM: this.shape.headDim, KV_STAGES: this.tiling.stages }, { arch: 'sm_90a' })
      .kernel('vs_prefill_wgmma', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    return this.kernel;
  }

  run(a: VerticalSlashPrefillArgs): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const { T, queryStart, qRowStride, sinkCount } = checkVerticalSlashPrefillArgs('vertical-slash wgmma', this.shape, a);
    const idx = a.index;
    const ctaRows = Math.ceil(idx.numBlocks / 2);
    this.prepare().launch(
      { grid: [ctaRows, H, 1], block: [THREADS, 1, 1], sharedBytes: verticalSlashWgmmaSharedBytes(D, this.tiling), stream: this.rt.stream },
      [a.q, a.k, a.v, a.out, idx.ranges, idx.rangeCount, idx.colStart, idx.colList, a.rowWindow?.rowLow ?? 0n, sinkCount, T, queryStart,
        H, Hkv, qRowStride, a.kvStride, idx.rangeCap, idx.rangeSlotsPerHead, idx.numBlocks, a.scale * LOG2E],
    );
  }
}
