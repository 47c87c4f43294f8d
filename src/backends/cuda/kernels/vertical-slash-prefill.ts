/**
 * Launcher for vertical-slash-prefill.cu: causal attention of the whole prompt where each (query head,
 * 64-row query block) visits only its listed key ranges and gathered columns (a DeviceVerticalSlashIndex
 * from vertical-slash-index.ts), bf16 in, fp32 accumulate, bf16 out.
 */
import type { DeviceInfo } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { PrefillShape } from './flash-prefill.js';
import { wgmmaPrefillUnsupported } from './flash-prefill-wgmma.js';
import { PATTERN_BLOCK } from './vertical-slash-index.js';
import { verticalSlashShapeProblem } from './vertical-slash-estimate.js';
import { checkVerticalSlashPrefillArgs, type VerticalSlashPrefillArgs } from './vertical-slash-prefill-args.js';
import { type VerticalSlashWgmmaTiling, VerticalSlashWgmmaPrefill, verticalSlashWgmmaLabel } from './vertical-slash-prefill-wgmma.js';

export type { VerticalSlashPrefillArgs } from './vertical-slash-prefill-args.js';

const LOG2E = 1.4426950408889634;
/** The launcher's default row tiling (docs/perf.md, "Vertical-slash prefill"). */
export const DEFAULT_VERTICAL_SLASH_ROW_TILES: VerticalSlashRowTiles = 1;

/**
 * Rows per warp: 1 = four warps of 16 rows (Q fragments in registers), 2 = two warps of 32 rows (each
 * K/V fragment serves both row tiles; Q re-read from shared memory).
 */
export type VerticalSlashRowTiles = 1 | 2;

/**
 * Which attention kernel runs: a row tiling of the mma.sync kernel, or `{ wgmma }`, the Hopper kernel
 * of vertical-slash-prefill-wgmma.ts (sm_90a only). Left out: `verticalSlashKernelChoice` decides.
 */
export type VerticalSlashKernelChoice = VerticalSlashRowTiles | { wgmma: Partial<VerticalSlashWgmmaTiling> };

/**
 * The wgmma tiling that runs when no choice is given, on a Hopper GPU for head dims 64/128; null: the
 * mma.sync kernel everywhere. It becomes a tiling only where the benchmark measured wgmma faster
 * (docs/perf.md, "Vertical-slash prefill", wgmma variant).
 */
export const AUTO_VERTICAL_SLASH_WGMMA_TILING: VerticalSlashWgmmaTiling | null = null;

/** The kernel a VerticalSlashFlashPrefill runs, and why when it is the mma.sync one. */
export type ResolvedVerticalSlashKernel =
  | { kernel: 'wgmma'; tiling: Partial<VerticalSlashWgmmaTiling> }
  | { kernel: 'mma'; mTiles: VerticalSlashRowTiles; reason: string };

/**
 * An explicit choice decides; with none, wgmma where `auto` is a tiling and the device and head dim
 * allow it, otherwise mma.sync with the default row tiling (the reason says which condition failed).
 */
export function verticalSlashKernelChoice(
  info: Pick<DeviceInfo, 'computeCapability' | 'name'>, headDim: number, choice: VerticalSlashKernelChoice | undefined,
  auto: VerticalSlashWgmmaTiling | null = AUTO_VERTICAL_SLASH_WGMMA_TILING,
): ResolvedVerticalSlashKernel {
  if (typeof choice === 'object') return { kernel: 'wgmma', tiling: choice.wgmma };
  if (choice !== undefined) return { kernel: 'mma', mTiles: choice, reason: 'mma.sync row tiling given' };
  if (auto === null) return { kernel: 'mma', mTiles: DEFAULT_VERTICAL_SLASH_ROW_TILES, reason: 'the wgmma kernel is not the default (not measured faster)' };
  const unsupported = wgmmaPrefillUnsupported(info, headDim);
  return unsupported === null
    ? { kernel: 'wgmma', tiling: auto }
    : { kernel: 'mma', mTiles: DEFAULT_VERTICAL_SLASH_ROW_TILES, reason: unsupported };
}

/** Dynamic shared memory per block: the Q tile and two stages of K and V tiles. */
export function verticalSlashPrefillSharedBytes(headDim: number): number {
  return 5 * PATTERN_BLOCK * (headDim + 8) * 2;
}

export class VerticalSlashFlashPrefill {
  private kernel: CudaKernel | null = null;
  /** The mma.sync kernel's rows per warp (1 also when the wgmma kernel runs: then unused). */
  readonly mTiles: VerticalSlashRowTiles;
  /** The Hopper kernel, when chosen. */
  private readonly wgmma: VerticalSlashWgmmaPrefill | null;

  /** choice: the kernel; left out, verticalSlashKernelChoice's (AUTO_VERTICAL_SLASH_WGMMA_TILING). */
  constructor(private readonly rt: CudaRuntime, readonly shape: PrefillShape, choice?: VerticalSlashKernelChoice) {
    const problem = verticalSlashShapeProblem(shape);
    if (problem) throw new Error(`vertical-slash prefill: ${problem}`);
    if (choice !== undefined && typeof choice !== 'object' && choice !== 1 && choice !== 2) {
      throw new Error(`vertical-slash prefill: mTiles must be 1 or 2 (got ${String(choice)})`);
    }
    const resolved = verticalSlashKernelChoice(rt.cuda.info, shape.headDim, choice);
    if (resolved.kernel === 'wgmma') {
      this.wgmma = new VerticalSlashWgmmaPrefill(rt, shape, resolved.tiling);
      this.mTiles = DEFAULT_VERTICAL_SLASH_ROW_TILES;
      return;
    }
    this.wgmma = null;
    this.mTiles = resolved.mTiles;
  }

  /** 'm1', 'm2' or the wgmma tiling's label ('wgmma-s3'). */
  get label(): string {
    return this.wgmma ? verticalSlashWgmmaLabel(this.wgmma.tiling) : `m${this.mTiles}`;
  }

  prepare(): CudaKernel {
    if (this.wgmma) return this.wgmma.prepare();
    this.kernel ??= this.rt.module('vertical-slash-prefill.cu', { HEAD_DIM: this.shape.headDim, M_TILES: this.mTiles })
      .kernel('vs_prefill', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    return this.kernel;
  }

  run(a: VerticalSlashPrefillArgs): void {
    if (this.wgmma) {
      this.wgmma.run(a);
      return;
    }
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const idx = a.index;
    const { T, queryStart, qRowStride, sinkCount } = checkVerticalSlashPrefillArgs('vertical-slash prefill', this.shape, a);
    this.prepare().launch(
      { grid: [idx.numBlocks, H, 1], block: [128 / this.mTiles, 1, 1], sharedBytes: verticalSlashPrefillSharedBytes(D), stream: this.rt.stream },
      [a.q, a.k, a.v, a.out, idx.ranges, idx.rangeCount, idx.colStart, idx.colList, a.rowWindow?.rowLow ?? 0n, sinkCount, T, queryStart,
        H, Hkv, qRowStride, a.kvStride, idx.rangeCap, idx.rangeSlotsPerHead, a.scale * LOG2E],
    );
  }
}
