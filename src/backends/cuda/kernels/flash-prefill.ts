/**
 * Launcher for flash-prefill.cu: dense causal attention of a chunk of T queries against a per-KV-head
 * cache (bf16 in, fp32 accumulate, bf16 out).
 */
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';

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

/** The kernel's "no window" value: wider than any context. */
const NO_WINDOW = 1 << 30;

export const SUPPORTED_PREFILL_HEAD_DIMS = [64, 128, 256] as const;
const LOG2E = 1.4426950408889634;

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

export class FlashPrefill {
  readonly tiling: PrefillTiling;

  constructor(private readonly rt: CudaRuntime, readonly shape: PrefillShape, tiling: Partial<PrefillTiling> = {}) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (!SUPPORTED_PREFILL_HEAD_DIMS.includes(D as 64 | 128 | 256)) throw new Error(`flash prefill: head dim ${D} unsupported (64, 128 or 256)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`flash prefill: ${H} query heads are not a multiple of ${Hkv} KV heads`);
    this.tiling = { ...(D > 128 ? WIDE_HEAD_PREFILL_TILING : DEFAULT_PREFILL_TILING), ...tiling };
    if (D > 128 && this.tiling.mTiles !== 1) throw new Error(`flash prefill: head dim ${D} needs mTiles = 1`);
  }

  private kernel: CudaKernel | null = null;

  /** Compiles (or loads from the cache) the kernel for this shape; run() calls it on first use. */
  prepare(): CudaKernel {
    const t = this.tiling;
    this.kernel ??= this.rt.module('flash-prefill.cu', {
      HEAD_DIM: this.shape.headDim, WARPS: t.warps, M_TILES: t.mTiles, BLOCK_N: t.blockN, BLOCK_ORDER: t.order === 'global' ? 1 : 0,
    })
      .kernel('flash_prefill', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    return this.kernel;
  }

  run(a: FlashPrefillArgs): void {
    const { numHeads: H, numKvHeads: Hkv } = this.shape;
    const T = a.numQueries;
    if (!(T > 0)) throw new Error(`flash prefill: numQueries must be positive (got ${T})`);
    if (a.queryStart < 0 || a.kvLen < a.queryStart + 1 || a.kvLen > a.kvStride) {
      throw new Error(`flash prefill: need 0 <= queryStart < kvLen <= kvStride (got ${a.queryStart}, ${a.kvLen}, ${a.kvStride})`);
    }
    // cp.async moves 16-byte pieces: every tensor must start on a 16-byte boundary.
    for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v], ['out', a.out]] as const) {
      if (ptr % 16n !== 0n) throw new Error(`flash prefill: ${name} must be 16-byte aligned`);
    }
    const qRowStride = a.qRowStride ?? H * this.shape.headDim;
    if (!Number.isInteger(qRowStride) || qRowStride < H * this.shape.headDim || qRowStride % 8 !== 0) {
      throw new Error(`flash prefill: qRowStride must be an integer >= H·D and a multiple of 8 (got ${qRowStride})`);
    }
    const window = a.slidingWindow ?? NO_WINDOW;
    if (!Number.isInteger(window) || window < 1) throw new Error(`flash prefill: sliding window must be a positive integer (got ${window})`);
    const blockRows = 16 * this.tiling.mTiles * this.tiling.warps;
    this.prepare().launch(
      {
        grid: [Math.ceil(T / blockRows), H, 1],
        block: [32 * this.tiling.warps, 1, 1],
        sharedBytes: flashPrefillSharedBytes(this.shape.headDim, this.tiling),
        stream: this.rt.stream,
      },
      [a.q, a.k, a.v, a.out, T, H, Hkv, qRowStride, a.kvStride, a.queryStart, a.kvLen, window, a.scale * LOG2E],
    );
  }
}

/** Causal prefill FLOPs (QK^T and PV over the visible pairs), for TFLOP/s figures. */
export function causalPrefillFlops(shape: PrefillShape, numQueries: number, queryStart: number): number {
  let pairs = 0;
  for (let t = 0; t < numQueries; t++) pairs += queryStart + t + 1;
  return 4 * pairs * shape.numHeads * shape.headDim;
}
