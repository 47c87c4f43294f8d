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
  headDim: number; // D: 64 or 128
}

export interface DecodeArgs {
  /** [H, D] bf16 query of the new token. */
  q: DevicePtr;
  /** [Hkv, kvStride, D] bf16 keys, rows [0, kvLen) attended (the new token's row included). */
  k: DevicePtr;
  v: DevicePtr;
  /** [H, D] bf16 output. */
  out: DevicePtr;
  kvLen: number;
  kvStride: number;
  scale: number;
}

const LOG2E = 1.4426950408889634;
const CHUNK_CHOICES = [256, 512, 1024, 2048];
const WARPS = 4;
const STATIC_SHARED_LIMIT = 48 * 1024;

export interface DecodePlan {
  chunk: number;
  splits: number;
}

/**
 * Rows per split: enough blocks to keep every multiprocessor streaming (about 4 blocks each), but
 * chunks no smaller than 256 rows so the combine stays cheap, and no larger than shared memory holds.
 */
export function planDecode(shape: DecodeShape, kvLen: number, multiprocessors: number): DecodePlan {
  const group = shape.numHeads / shape.numKvHeads;
  const targetSplits = Math.max(1, Math.ceil((4 * multiprocessors) / shape.numKvHeads));
  const wanted = Math.ceil(kvLen / targetSplits);
  const fits = (c: number) => 4 * (group * c + WARPS * group * shape.headDim) <= STATIC_SHARED_LIMIT;
  let chunk = CHUNK_CHOICES[0];
  for (const c of CHUNK_CHOICES) if (fits(c) && c <= Math.max(wanted, CHUNK_CHOICES[0])) chunk = c;
  if (!fits(chunk)) throw new Error(`decode attention: group of ${group} heads does not fit shared memory`);
  return { chunk, splits: Math.ceil(kvLen / chunk) };
}

export class DecodeAttentionKernel {
  private readonly group: number;
  private kernels = new Map<number, { partial: CudaKernel; combine: CudaKernel }>();

  constructor(private readonly rt: CudaRuntime, readonly shape: DecodeShape) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (D !== 64 && D !== 128) throw new Error(`decode attention: head dim ${D} unsupported (64 or 128)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`decode attention: ${H} query heads are not a multiple of ${Hkv} KV heads`);
    this.group = H / Hkv;
    if (this.group > 8) throw new Error(`decode attention: GQA group ${this.group} > 8 unsupported`);
  }

  private kernelsFor(chunk: number) {
    let k = this.kernels.get(chunk);
    if (!k) {
      const mod = this.rt.module('decode-attention.cu', { HEAD_DIM: this.shape.headDim, GROUP: this.group, CHUNK: chunk });
      k = {
        partial: mod.kernel('decode_partial', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'f32']),
        combine: mod.kernel('decode_combine', ['ptr', 'ptr', 'ptr', 'i32', 'i32']),
      };
      this.kernels.set(chunk, k);
    }
    return k;
  }

  /** Compiles the variant a context of kvLen rows will use. */
  prepare(kvLen: number): DecodePlan {
    const plan = planDecode(this.shape, kvLen, this.rt.cuda.info.multiprocessors);
    this.kernelsFor(plan.chunk);
    return plan;
  }

  run(a: DecodeArgs): DecodePlan {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    if (!(a.kvLen > 0) || a.kvLen > a.kvStride) throw new Error(`decode attention: need 0 < kvLen <= kvStride (got ${a.kvLen}, ${a.kvStride})`);
    const plan = planDecode(this.shape, a.kvLen, this.rt.cuda.info.multiprocessors);
    const { partial, combine } = this.kernelsFor(plan.chunk);
    const partO = this.rt.pool.acquire(plan.splits * H * D * 4);
    const partML = this.rt.pool.acquire(plan.splits * H * 2 * 4);
    const stream = this.rt.stream;
    partial.launch(
      { grid: [plan.splits, Hkv, 1], block: [32 * WARPS, 1, 1], sharedBytes: 0, stream },
      [a.q, a.k, a.v, partO.ptr, partML.ptr, H, a.kvStride, a.kvLen, a.scale * LOG2E],
    );
    combine.launch(
      { grid: [H, 1, 1], block: [Math.max(D, 32), 1, 1], sharedBytes: 0, stream },
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
