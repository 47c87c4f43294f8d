/**
 * Launcher for vertical-slash-prefill.cu: causal attention of the whole prompt where each (query head,
 * 64-row query block) visits only its listed key ranges and gathered columns (a DeviceVerticalSlashIndex
 * from vertical-slash-index.ts), bf16 in, fp32 accumulate, bf16 out; or, on Hopper, the wgmma kernel of
 * vertical-slash-prefill-wgmma.ts (the default there: verticalSlashKernelChoice, autoRunsMma).
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
 * The wgmma tiling that runs when no choice is given, on a Hopper GPU for head dims 64/128 (null would
 * mean the mma.sync kernel everywhere). Four stages: in the H100 benchmark (docs/perf.md,
 * "Vertical-slash prefill", wgmma variant) 4–23% faster than mma.sync m1 in 13 of 16 Vertical-Slash
 * rows (16K–128K, s = 0.5–0.95; tied at 16K s = 0.95) and 17–27% faster in all 16 sink + local rows;
 * slower only where autoRunsMma sends the run to mma.sync.
 */
export const AUTO_VERTICAL_SLASH_WGMMA_TILING: VerticalSlashWgmmaTiling | null = { stages: 4 };

/**
 * Under the automatic choice, a run over a Vertical-Slash index (scattered diagonals: the index
 * builder's, whose exact pairs are known) of at least AUTO_MMA_MIN_CONTEXT keys at sparsity
 * AUTO_MMA_MIN_SPARSITY or more runs mma.sync m1: at 128K, s = 0.9 / 0.95 wgmma measured 3–11% slower
 * in both device runs (at 64K within ±4%, elsewhere faster). The context bound lies between the
 * measured 64K and 128K.
 */
export const AUTO_MMA_MIN_CONTEXT = 98304;
export const AUTO_MMA_MIN_SPARSITY = 0.85;

/**
 * Whether the automatic choice runs mma.sync for T queries from queryStart over H heads whose exact
 * attended pairs are `pairs` ([H]; null for an index without them, e.g. sink + local's one range per
 * block, where wgmma was faster everywhere).
 */
export function autoRunsMma(T: number, queryStart: number, numHeads: number, pairs: Float64Array | null): boolean {
  if (pairs === null || queryStart + T < AUTO_MMA_MIN_CONTEXT) return false;
  const dense = numHeads * (T * queryStart + (T * (T + 1)) / 2);
  const attended = pairs.reduce((a, b) => a + b, 0);
  return 1 - attended / dense >= AUTO_MMA_MIN_SPARSITY;
}

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
  /** The mma.sync kernel's rows per warp (1 also when the wgmma kernel runs: then unused unless auto). */
  readonly mTiles: VerticalSlashRowTiles;
  /** The Hopper kernel, when chosen. */
  private readonly wgmma: VerticalSlashWgmmaPrefill | null;
  /** No explicit choice on Hopper: wgmma, or per run mma.sync m1 where autoRunsMma says so. */
  private readonly auto: boolean;
  /** Label of the kernel the last run launched ('m1', 'wgmma-s4', ...), null before any. */
  lastKernel: string | null = null;

  /** choice: the kernel; left out, verticalSlashKernelChoice's (AUTO_VERTICAL_SLASH_WGMMA_TILING, autoRunsMma). */
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
      this.auto = choice === undefined;
      return;
    }
    this.wgmma = null;
    this.mTiles = resolved.mTiles;
    this.auto = false;
  }

  /** 'm1', 'm2', the wgmma tiling's label ('wgmma-s3'), or 'auto-wgmma-s4' (the automatic choice). */
  get label(): string {
    if (!this.wgmma) return `m${this.mTiles}`;
    const wgmma = verticalSlashWgmmaLabel(this.wgmma.tiling);
    return this.auto ? `auto-${wgmma}` : wgmma;
  }

  /** Compiles (or loads) the kernel, both under the automatic choice; returns the wgmma one if chosen. */
  prepare(): CudaKernel {
    if (this.wgmma) {
      if (this.auto) this.prepareMma();
      return this.wgmma.prepare();
    }
    return this.prepareMma();
  }

  private prepareMma(): CudaKernel {
    this.kernel ??= this.rt.module('vertical-slash-prefill.cu', { HEAD_DIM: this.shape.headDim, M_TILES: this.mTiles })
      .kernel('vs_prefill', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    return this.kernel;
  }

  run(a: VerticalSlashPrefillArgs): void {
    const pairs = 'pairs' in a.index && a.index.pairs instanceof Float64Array ? a.index.pairs : null;
    if (this.wgmma && !(this.auto && autoRunsMma(a.numQueries, a.queryStart ?? 0, this.shape.numHeads, pairs))) {
      this.wgmma.run(a);
      this.lastKernel = verticalSlashWgmmaLabel(this.wgmma.tiling);
      return;
    }
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const idx = a.index;
    const { T, queryStart, qRowStride, sinkCount } = checkVerticalSlashPrefillArgs('vertical-slash prefill', this.shape, a);
    this.prepareMma().launch(
      { grid: [idx.numBlocks, H, 1], block: [128 / this.mTiles, 1, 1], sharedBytes: verticalSlashPrefillSharedBytes(D), stream: this.rt.stream },
      [a.q, a.k, a.v, a.out, idx.ranges, idx.rangeCount, idx.colStart, idx.colList, a.rowWindow?.rowLow ?? 0n, sinkCount, T, queryStart,
        H, Hkv, qRowStride, a.kvStride, idx.rangeCap, idx.rangeSlotsPerHead, a.scale * LOG2E],
    );
    this.lastKernel = `m${this.mTiles}`;
  }
}
