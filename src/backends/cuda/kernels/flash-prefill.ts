/**
 * Dense causal attention of a chunk of T queries against a per-KV-head cache (bf16 in, fp32
 * accumulate, bf16 out). Two kernels compute it: flash-prefill.cu (mma.sync, every GPU, head dims 64,
 * 128, 256) and flash-prefill-wgmma.cu (Hopper wgmma, sm_90 only, head dims 64 and 128). FlashPrefill
 * picks one (see PrefillKernelChoice); both take the same arguments.
 */
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import {
  WgmmaFlashPrefill, type WgmmaPrefillTiling, wgmmaPrefillUnsupported, wgmmaTilingLabel,
} from './flash-prefill-wgmma.js';
import { checkedPrefillArgs, prefillScaleLog2 } from './prefill-args.js';

export interface PrefillShape {
  numHeads: number; // H
  numKvHeads: number; // Hkv
  headDim: number; // D: 64, 128 or 256
}

export interface FlashPrefillArgs {
  /** [T, H, D] bf16 queries (rows qRowStride apart); query t sits at position queryStart + t. */
  q: DevicePtr;
  /**
   * Elements between consecutive tokens' queries (default H·D). Wider when q is the leading part of
   * fused qkv projection rows, [T, (H + 2·Hkv)·D], so no copy is needed.
   */
  qRowStride?: number;
  /** [Hkv, kvStride, D] bf16 keys; row r holds position r. */
  k: DevicePtr;
  /** [Hkv, kvStride, D] bf16 values. */
  v: DevicePtr;
  /** [T, H, D] bf16 output. */
  out: DevicePtr;
  numQueries: number; // T
  queryStart: number;
  /** Valid cache rows (>= queryStart + T for causal prefill of the whole chunk). */
  kvLen: number;
  /** Rows allocated per KV head (row stride between heads). */
  kvStride: number;
  /** Softmax scale applied to q·k (usually 1/sqrt(D)). */
  scale: number;
  /** Sliding-window layers: a query at p sees rows r > p - window. null/undefined: full causal. */
  slidingWindow?: number | null;
}

export const SUPPORTED_PREFILL_HEAD_DIMS = [64, 128, 256] as const;

/**
 * Tiling of one variant: `warps` per block, `mTiles` 16-row mma tiles per warp (2 halves the
 * shared-memory traffic per FLOP), `blockN` keys per tile.
 */
export interface PrefillTiling {
  warps: 4 | 8;
  mTiles: 1 | 2;
  blockN: 32 | 64;
  /**
   * Block schedule: 'head' runs each head's query blocks heaviest first, head after head; 'global'
   * runs the heaviest blocks of every head first (longest-first list scheduling). Default 'head'.
   */
  order?: 'head' | 'global';
}

/**
 * The tiling the benchmark found fastest on an H100 (docs/perf.md, prefill v4), for D <= 128: 32
 * rows per warp, 64-key tiles, heaviest query blocks of every head first.
 */
export const DEFAULT_PREFILL_TILING: PrefillTiling = { warps: 4, mTiles: 2, blockN: 64, order: 'global' };
/**
 * D = 256 (Gemma 3): one row tile per warp (the accumulator alone takes 128 registers) and 32-key
 * tiles, so two blocks fit a multiprocessor's shared memory.
 */
export const WIDE_HEAD_PREFILL_TILING: PrefillTiling = { warps: 4, mTiles: 1, blockN: 32 };

export function tilingLabel(t: PrefillTiling): string {
  return `w${t.warps}m${t.mTiles}n${t.blockN}${t.order === 'global' ? 'g' : ''}`;
}

/** Bytes of dynamic shared memory one block needs: Q tile plus two stages of K and V tiles. */
export function flashPrefillSharedBytes(headDim: number, t: PrefillTiling): number {
  const rowStride = headDim + 8;
  return (16 * t.mTiles * t.warps + 4 * t.blockN) * rowStride * 2;
}

/**
 * Which kernel FlashPrefill runs:
 *   'auto'   the wgmma kernel where PREFILL_WGMMA_BY_DEFAULT is set, the device is sm_90 and the head
 *            dim is 64 or 128, and no mma.sync tiling was given; the mma.sync kernel otherwise;
 *   'mma'    the mma.sync kernel with the given (or default) tiling;
 *   { wgmma } the wgmma kernel with that tiling (an error where it cannot run).
 */
export type PrefillKernelChoice = 'auto' | 'mma' | { wgmma: Partial<WgmmaPrefillTiling> };

/**
 * Whether 'auto' picks the wgmma kernel on Hopper. Set from measurements (docs/perf.md, Prefill):
 * only a kernel that beats the mma.sync one at every benchmarked length becomes the default; wgmma v3
 * with warp arrivals did (1.63-1.79x at 4K-64K on an H100).
 */
export const PREFILL_WGMMA_BY_DEFAULT = true;

export class FlashPrefill {
  /** The mma.sync tiling (used when `wgmma` is null). */
  readonly tiling: PrefillTiling;
  /** The wgmma kernel when this prefill runs on it, else null. */
  readonly wgmma: WgmmaFlashPrefill | null;

  constructor(
    private readonly rt: CudaRuntime, readonly shape: PrefillShape, tiling: Partial<PrefillTiling> = {},
    choice: PrefillKernelChoice = 'auto',
  ) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (!SUPPORTED_PREFILL_HEAD_DIMS.includes(D as 64 | 128 | 256)) throw new Error(`flash prefill: head dim ${D} unsupported (64, 128 or 256)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`flash prefill: ${H} query heads are not a multiple of ${Hkv} KV heads`);
    this.tiling = { ...(D > 128 ? WIDE_HEAD_PREFILL_TILING : DEFAULT_PREFILL_TILING), ...tiling };
    if (D > 128 && this.tiling.mTiles !== 1) throw new Error(`flash prefill: head dim ${D} needs mTiles = 1`);
    const autoWgmma = choice === 'auto' && PREFILL_WGMMA_BY_DEFAULT && Object.keys(tiling).length === 0 &&
      wgmmaPrefillUnsupported(rt.cuda.info, D) === null;
    this.wgmma = typeof choice === 'object' ? new WgmmaFlashPrefill(rt, shape, choice.wgmma)
      : autoWgmma ? new WgmmaFlashPrefill(rt, shape) : null;
  }

  /** The kernel and tiling that run, e.g. 'w4m2n64g' (mma.sync) or 'wgmma3-n128g-wa'. */
  get label(): string {
    return this.wgmma ? wgmmaTilingLabel(this.wgmma.tiling) : tilingLabel(this.tiling);
  }

  private kernel: CudaKernel | null = null;

  /** Compiles (or loads from the cache) the kernel for this shape; run() calls it on first use. */
  prepare(): CudaKernel {
    if (this.wgmma) return this.wgmma.prepare();
    const t = this.tiling;
    this.kernel ??= this.rt.module('flash-prefill.cu', {
      HEAD_DIM: this.shape.headDim, WARPS: t.warps, M_TILES: t.mTiles, BLOCK_N: t.blockN, BLOCK_ORDER: t.order === 'global' ? 1 : 0,
    })
      .kernel('flash_prefill', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    return this.kernel;
  }

  run(a: FlashPrefillArgs): void {
    if (this.wgmma) {
      this.wgmma.run(a);
      return;
    }
    const { numHeads: H, numKvHeads: Hkv } = this.shape;
    const T = a.numQueries;
    const { qRowStride, window } = checkedPrefillArgs('flash prefill', this.shape, a);
    const blockRows = 16 * this.tiling.mTiles * this.tiling.warps;
    this.prepare().launch(
      {
        grid: [Math.ceil(T / blockRows), H, 1],
        block: [32 * this.tiling.warps, 1, 1],
        sharedBytes: flashPrefillSharedBytes(this.shape.headDim, this.tiling),
        stream: this.rt.stream,
      },
      [a.q, a.k, a.v, a.out, T, H, Hkv, qRowStride, a.kvStride, a.queryStart, a.kvLen, window, prefillScaleLog2(a.scale)],
    );
  }
}

/** Causal prefill FLOPs (QK^T and PV over the visible pairs), for TFLOP/s figures. */
export function causalPrefillFlops(shape: PrefillShape, numQueries: number, queryStart: number): number {
  let pairs = 0;
  for (let t = 0; t < numQueries; t++) pairs += queryStart + t + 1;
  return 4 * pairs * shape.numHeads * shape.headDim;
}
