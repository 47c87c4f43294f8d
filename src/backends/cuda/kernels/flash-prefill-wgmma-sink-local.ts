/**
 * Sink + local prefill on Hopper: the dense wgmma kernel (flash-prefill-wgmma.cu, v3) compiled with
 * SINK_LOCAL, so each 128-row block visits tile 0 for the sink keys and then only the tiles of its
 * rows' local windows, the window of every row computed in the kernel by the CPU rule
 * (src/methods/sink-local.ts, sinkLocalKeys). The work is the attended pairs plus one diagonal tile
 * per block, at the dense kernel's rate; no index is built or uploaded. Opt-in variant (SinkLocalWindowVariant):
 * foldSinks loads the sinks into the first window tile's head, whose keys every row of the block masks
 * off anyway, instead of a whole tile 0 (where they fit: 4 sinks in all blocks whose window starts past
 * tile 0; SINK_FOLD); persistent launches at most one block per multiprocessor, each walking 128-row work
 * items so that the next item's loads overlap the current one's last tile and store (SINK_PERSIST). Both
 * are documented in flash-prefill-wgmma.cu.
 */
import type { SinkLocalRule } from '../../../methods/sink-local.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { FlashPrefillArgs, PrefillShape } from './flash-prefill.js';
import {
  type WgmmaPrefillTiling, WGMMA_PREFILL_BLOCK_ROWS, resolveWgmmaPrefillTiling, wgmmaPrefillSharedBytes, wgmmaPrefillUnsupported,
  wgmmaTilingLabel,
} from './flash-prefill-wgmma.js';
import { checkedPrefillArgs, prefillScaleLog2 } from './prefill-args.js';

/** The rule as the kernel takes it: a fixed window (localWindow >= 0) or -1 and the kept fraction 1 - s. */
export interface SinkLocalKernelRule {
  sinkTokens: number;
  localWindow: number;
  keepFraction: number;
}

/**
 * The kernel's form of a rule. keepFraction is `1 - (sparsity ?? 0)` computed here exactly as the CPU
 * rule computes it, so the device's double product rounds to the same keep count for every row.
 */
export function sinkLocalKernelRule(rule: SinkLocalRule): SinkLocalKernelRule {
  if (!Number.isInteger(rule.sinkTokens) || rule.sinkTokens < 0) throw new Error(`sink-local prefill: sinkTokens must be a non-negative integer (got ${rule.sinkTokens})`);
  if (rule.localWindow !== null && (!Number.isInteger(rule.localWindow) || rule.localWindow < 0)) {
    throw new Error(`sink-local prefill: localWindow must be a non-negative integer or null (got ${rule.localWindow})`);
  }
  const s = rule.sparsity ?? 0;
  if (!(s >= 0 && s < 1)) throw new Error(`sink-local prefill: sparsity must be in [0, 1) (got ${rule.sparsity})`);
  return { sinkTokens: rule.sinkTokens, localWindow: rule.localWindow ?? -1, keepFraction: 1 - s };
}

export type SinkLocalPrefillArgs = Omit<FlashPrefillArgs, 'slidingWindow'>;

/** Opt-in variants of the window kernel (defaults: none; each is measured before it may become one). */
export interface SinkLocalWindowVariant {
  /** Sinks folded into the first window tile's masked head instead of a tile 0 of their own (SINK_FOLD). */
  foldSinks?: boolean;
  /** At most one block per multiprocessor, each walking work items in the heaviest-first order (SINK_PERSIST). */
  persistent?: boolean;
  /** persistent only: at most this many blocks (tests use a few, so that each block walks many items). */
  persistentBlocks?: number;
  /**
   * The mask (SINK_MASK): 'exact' (default) tests each score's key against the row; 'lean' the same keys
   * from per-row column bounds set once per tile; 'bits' the same keys as a bit per score of the row, set
   * once per tile; 'off' masks nothing and gives WRONG outputs: it times the mask's cost, for benchmarks
   * only (SinkLocalDevicePrefill refuses it).
   */
  mask?: 'exact' | 'lean' | 'bits' | 'off';
}

const SINK_MASK_MODES = { exact: 0, lean: 1, off: 2, bits: 3 } as const;

/** The variant SinkLocalDevicePrefill runs when given none: no flag (each stays opt-in until measured). */
export const DEFAULT_SINK_LOCAL_WINDOW_VARIANT: Readonly<SinkLocalWindowVariant> = {};

export class WgmmaSinkLocalPrefill {
  readonly tiling: WgmmaPrefillTiling;
  private kernel: CudaKernel | null = null;

  constructor(
    private readonly rt: CudaRuntime, readonly shape: PrefillShape, tiling: Partial<WgmmaPrefillTiling> = {},
    readonly variant: SinkLocalWindowVariant = {},
  ) {
    const reason = wgmmaPrefillUnsupported(rt.cuda.info, shape.headDim);
    if (reason) throw new Error(`sink-local ${reason}`);
    if (!(shape.numKvHeads > 0) || shape.numHeads % shape.numKvHeads !== 0) {
      throw new Error(`sink-local wgmma prefill: ${shape.numHeads} query heads are not a multiple of ${shape.numKvHeads} KV heads`);
    }
    this.tiling = resolveWgmmaPrefillTiling(tiling);
    if ((this.tiling.version ?? 3) !== 3) throw new Error('sink-local wgmma prefill: needs loop version 3');
    if (variant.mask !== undefined && !Object.hasOwn(SINK_MASK_MODES, variant.mask)) {
      throw new Error(`sink-local wgmma prefill: mask must be one of ${Object.keys(SINK_MASK_MODES).join(', ')} (got ${variant.mask})`);
    }
    const cap = variant.persistentBlocks;
    if (cap !== undefined && (!variant.persistent || !Number.isInteger(cap) || cap < 1)) {
      throw new Error(`sink-local wgmma prefill: persistentBlocks must be a positive integer, with persistent (got ${cap})`);
    }
  }

  get label(): string {
    const v = this.variant;
    const mask = v.mask === undefined || v.mask === 'exact' ? '' : `-mask-${v.mask}`;
    return `${wgmmaTilingLabel(this.tiling)}-sink-local${v.foldSinks ? '-fold' : ''}${v.persistent ? '-persist' : ''}${mask}`;
  }

  prepare(): CudaKernel {
    const t = this.tiling;
    const shared = wgmmaPrefillSharedBytes(this.shape.headDim, t);
    if (shared > this.rt.cuda.info.maxSharedPerBlockOptin) {
      throw new Error(`${this.label}: needs ${shared} B of shared memory, the device allows ${this.rt.cuda.info.maxSharedPerBlockOptin}`);
    }
    this.kernel ??= this.rt.module('flash-prefill-wgmma.cu', {
      HEAD_DIM: this.shape.headDim, BLOCK_N: t.blockN, BLOCK_ORDER: (t.order ?? 'global') === 'global' ? 1 : 0,
      WGMMA_VERSION: 3, KV_STAGES: t.stages ?? 2, Q_IN_REGS: t.qInRegisters ? 1 : 0, WARP_ARRIVALS: t.warpArrivals ? 1 : 0,
      SINK_LOCAL: 1, ...(this.variant.foldSinks ? { SINK_FOLD: 1 } : {}), ...(this.variant.persistent ? { SINK_PERSIST: 1 } : {}),
      ...(this.variant.mask !== undefined && this.variant.mask !== 'exact' ? { SINK_MASK: SINK_MASK_MODES[this.variant.mask] } : {}),
    }, { arch: 'sm_90a' })
      .kernel('flash_prefill_wgmma', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f64', 'f32']);
    return this.kernel;
  }

  /** Enqueues the kernel: queries queryStart .. queryStart + T - 1 against cache rows [0, kvLen). */
  run(a: SinkLocalPrefillArgs, rule: SinkLocalKernelRule): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const { qRowStride } = checkedPrefillArgs(this.label, this.shape, a);
    const rowBlocks = Math.ceil(a.numQueries / WGMMA_PREFILL_BLOCK_ROWS);
    // Persistent: one block per multiprocessor (one fits), or the variant's cap, each walking work items.
    const persistentBlocks = Math.min(rowBlocks * H, this.variant.persistentBlocks ?? this.rt.cuda.info.multiprocessors);
    this.prepare().launch(
      {
        grid: this.variant.persistent ? [persistentBlocks, 1, 1] : [rowBlocks, H, 1],
        block: [384, 1, 1],
        sharedBytes: wgmmaPrefillSharedBytes(D, this.tiling),
        stream: this.rt.stream,
      },
      [a.q, a.k, a.v, a.out, a.numQueries, H, Hkv, qRowStride, a.kvStride, a.queryStart, a.kvLen,
        rule.sinkTokens, rule.localWindow, rule.keepFraction, prefillScaleLog2(a.scale)],
    );
  }
}
