/**
 * Launcher for decode-attention.cu: one new token's attention over a per-KV-head cache, split over
 * the context (decode_partial) and merged (decode_combine). Workspace comes from the runtime's pool.
 */
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';

export interface DecodeShape {
  numHeads: number; // H
  numKvHeads: number; // Hkv
  headDim: number; // D: 64, 128 or 256
}

export interface DecodeArgs {
  /** [H, D] bf16 query of the new token. */
  q: DevicePtr;
  /** [Hkv, kvStride, D] bf16 keys, rows [0, kvLen) attended (the new token's row included). */
  k: DevicePtr;
  v: DevicePtr;
  /** [H, D] bf16 output. */
  out: DevicePtr;
  /** Rows attended (with headLengths: the longest head's length). */
  kvLen: number;
  kvStride: number;
  scale: number;
  /** Sliding-window layers: only the last `slidingWindow` rows are attended. */
  slidingWindow?: number | null;
  /**
   * [Hkv] int32 on the device: rows held by each KV head when eviction left them different lengths
   * (Ada-SnapKV); each in [1, kvLen]. Not combinable with slidingWindow.
   */
  headLengths?: DevicePtr | null;
}

const LOG2E = 1.4426950408889634;
const THREADS = 128;
const ROWS_PER_SLOT_STEP = 4; // UNROLL in the kernel
const MAX_COMBINE_SHARED_BYTES = 48 * 1024;

/** Rows the block covers per step of its loop (row slots x unroll); chunks are multiples of it. */
export function decodeRowsPerStep(headDim: number): number {
  return (THREADS / (headDim / 8)) * ROWS_PER_SLOT_STEP;
}

export interface DecodePlan {
  /** Rows per split. */
  chunk: number;
  splits: number;
}

/**
 * One wave: as many (split, KV head) blocks as the device holds at once (`blocksPerSM` from the
 * occupancy API), each streaming an equal chunk; chunks are at least two loop steps long so the
 * partials stay small next to the cache.
 */
export function planDecode(shape: DecodeShape, kvLen: number, multiprocessors: number, blocksPerSM: number): DecodePlan {
  if (!(kvLen > 0)) throw new Error(`decode plan: kvLen must be positive (got ${kvLen})`);
  const step = decodeRowsPerStep(shape.headDim);
  const targetSplits = Math.max(1, Math.floor((Math.max(1, blocksPerSM) * multiprocessors) / shape.numKvHeads));
  const chunk = Math.max(2 * step, Math.ceil(Math.ceil(kvLen / targetSplits) / step) * step);
  const splits = Math.ceil(kvLen / chunk);
  // The combine keeps one weight per split in shared memory.
  if (splits * 4 > MAX_COMBINE_SHARED_BYTES) throw new Error(`decode plan: ${splits} splits exceed the combine's shared memory`);
  return { chunk, splits };
}

export class DecodeAttentionKernel {
  private readonly group: number;
  private kernels: { partial: CudaKernel; combine: CudaKernel; blocksPerSM: number } | null = null;

  constructor(private readonly rt: CudaRuntime, readonly shape: DecodeShape) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (D !== 64 && D !== 128 && D !== 256) throw new Error(`decode attention: head dim ${D} unsupported (64, 128 or 256)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`decode attention: ${H} query heads are not a multiple of ${Hkv} KV heads`);
    this.group = H / Hkv;
    if (this.group > 8) throw new Error(`decode attention: GQA group ${this.group} > 8 unsupported`);
  }

  /** Compiles (or loads from the cache) the kernels for this shape. */
  prepare() {
    if (!this.kernels) {
      const mod = this.rt.module('decode-attention.cu', { HEAD_DIM: this.shape.headDim, GROUP: this.group });
      const partial = mod.kernel('decode_partial', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'f32']);
      this.kernels = {
        partial,
        combine: mod.kernel('decode_combine', ['ptr', 'ptr', 'ptr', 'i32', 'i32']),
        blocksPerSM: partial.maxActiveBlocksPerSM(THREADS),
      };
    }
    return this.kernels;
  }

  plan(kvLen: number): DecodePlan {
    return planDecode(this.shape, kvLen, this.rt.cuda.info.multiprocessors, this.prepare().blocksPerSM);
  }

  run(a: DecodeArgs): DecodePlan {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    if (!(a.kvLen > 0) || a.kvLen > a.kvStride) throw new Error(`decode attention: need 0 < kvLen <= kvStride (got ${a.kvLen}, ${a.kvStride})`);
    // Rows are read as 16-byte vectors: q, k and v must start on a 16-byte boundary.
    for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v]] as const) {
      if (ptr % 16n !== 0n) throw new Error(`decode attention: ${name} must be 16-byte aligned`);
    }
    const { partial, combine } = this.prepare();
    // A window is a row offset: the last W rows of every head, same stride.
    const window = a.slidingWindow ?? null;
    if (window !== null && (!Number.isInteger(window) || window < 1)) throw new Error(`decode attention: sliding window must be a positive integer (got ${window})`);
    if (window !== null && a.headLengths) throw new Error('decode attention: sliding window with per-head lengths is not supported');
    const skip = window === null ? 0 : Math.max(0, a.kvLen - window);
    const rowBytes = BigInt(skip * D * 2);
    const kvLen = a.kvLen - skip;
    const plan = this.plan(kvLen);
    const partO = this.rt.pool.acquire(plan.splits * H * D * 4);
    const partML = this.rt.pool.acquire(plan.splits * H * 2 * 4);
    const stream = this.rt.stream;
    partial.launch(
      { grid: [plan.splits, Hkv, 1], block: [THREADS, 1, 1], sharedBytes: 0, stream },
      [a.q, a.k + rowBytes, a.v + rowBytes, partO.ptr, partML.ptr, a.headLengths ?? 0n, H, a.kvStride, kvLen, plan.chunk, a.scale * LOG2E],
    );
    combine.launch(
      { grid: [H, 1, 1], block: [128, 1, 1], sharedBytes: plan.splits * 4, stream },
      [partO.ptr, partML.ptr, a.out, H, plan.splits],
    );
    // Stream order makes reuse safe: later work on this stream runs after the combine has read them.
    this.rt.pool.release(partO);
    this.rt.pool.release(partML);
    return plan;
  }
}

/** Bytes decode attention must read: every valid K and V row once. */
export function decodeBytes(shape: DecodeShape, kvLen: number): number {
  return 2 * shape.numKvHeads * kvLen * shape.headDim * 2;
}
