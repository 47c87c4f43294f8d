/**
 * Launcher for block-sparse-prefill.cu: causal attention of T queries over per-(query head, 16-row
 * query tile) lists of 16-key tiles (BlockSparseLayout, block-sparse-layout.ts), bf16 in, fp32
 * accumulate, bf16 out.
 */
import type { BlockSparseLayout } from '../block-sparse-layout.js';
import { DEVICE_TILE } from '../block-sparse-layout.js';
import type { DevicePtr } from '../context.js';
import type { DeviceBuffer } from '../memory-pool.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { PrefillShape } from './flash-prefill.js';

export const SUPPORTED_BLOCK_SPARSE_HEAD_DIMS = [64, 128] as const;
const LOG2E = 1.4426950408889634;

/** A layout's CSR arrays on the device; `layout` stays on the host for validation. */
export interface DeviceBlockSparseLayout {
  layout: BlockSparseLayout;
  tileOffsets: DeviceBuffer; // [H·numQueryTiles + 1] int32
  keyTiles: DeviceBuffer; // [total tiles] int32
}

export function uploadBlockSparseLayout(rt: CudaRuntime, layout: BlockSparseLayout): DeviceBlockSparseLayout {
  const tileOffsets = rt.pool.acquire(layout.tileOffsets.byteLength);
  rt.cuda.upload(tileOffsets.ptr, layout.tileOffsets);
  const keyTiles = rt.pool.acquire(Math.max(4, layout.keyTiles.byteLength));
  if (layout.keyTiles.length > 0) rt.cuda.upload(keyTiles.ptr, layout.keyTiles);
  return { layout, tileOffsets, keyTiles };
}

export function releaseBlockSparseLayout(rt: CudaRuntime, d: DeviceBlockSparseLayout): void {
  rt.pool.release(d.tileOffsets);
  rt.pool.release(d.keyTiles);
}

export interface BlockSparsePrefillArgs {
  /** [T, H, D] bf16 queries (rows qRowStride apart); query t sits at position queryStart + t. */
  q: DevicePtr;
  /** Elements between consecutive tokens' queries (default H·D). */
  qRowStride?: number;
  /** [Hkv, kvStride, D] bf16 keys; row r holds position r. */
  k: DevicePtr;
  /** [Hkv, kvStride, D] bf16 values. */
  v: DevicePtr;
  /** [T, H, D] bf16 output. */
  out: DevicePtr;
  layout: DeviceBlockSparseLayout;
  numQueries: number; // T
  queryStart: number;
  kvLen: number;
  kvStride: number;
  scale: number;
}

/** Query tiles (warps) per block; warps are independent, so this only sets the block size. */
const WARPS = 4;

/** Bytes of dynamic shared memory per block: per warp a Q tile and two stages of K and V tiles. */
export function blockSparseSharedBytes(headDim: number): number {
  return WARPS * 5 * DEVICE_TILE * (headDim + 8) * 2;
}

export class BlockSparseFlashPrefill {
  private kernel: CudaKernel | null = null;

  constructor(private readonly rt: CudaRuntime, readonly shape: PrefillShape) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (!SUPPORTED_BLOCK_SPARSE_HEAD_DIMS.includes(D as 64 | 128)) throw new Error(`block-sparse prefill: head dim ${D} unsupported (64 or 128)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`block-sparse prefill: ${H} query heads are not a multiple of ${Hkv} KV heads`);
  }

  prepare(): CudaKernel {
    this.kernel ??= this.rt.module('block-sparse-prefill.cu', { HEAD_DIM: this.shape.headDim, WARPS })
      .kernel('block_sparse_prefill', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    return this.kernel;
  }

  run(a: BlockSparsePrefillArgs): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const T = a.numQueries;
    const layout = a.layout.layout;
    if (!(T > 0)) throw new Error(`block-sparse prefill: numQueries must be positive (got ${T})`);
    if (a.queryStart < 0 || a.kvLen < a.queryStart + T || a.kvLen > a.kvStride) {
      throw new Error(`block-sparse prefill: need 0 <= queryStart, queryStart + T <= kvLen <= kvStride (got ${a.queryStart}, ${T}, ${a.kvLen}, ${a.kvStride})`);
    }
    const numQueryTiles = Math.ceil(T / DEVICE_TILE);
    if (layout.numHeads !== H || layout.numQueryTiles !== numQueryTiles) {
      throw new Error(`block-sparse prefill: layout is for ${layout.numHeads} heads x ${layout.numQueryTiles} query tiles, the call needs ${H} x ${numQueryTiles}`);
    }
    // Key tiles index absolute rows: every listed tile must start inside the cache.
    for (const kt of layout.keyTiles) {
      if (kt < 0 || kt * DEVICE_TILE >= a.kvLen) throw new Error(`block-sparse prefill: key tile ${kt} lies outside the ${a.kvLen} cache rows`);
    }
    for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v], ['out', a.out]] as const) {
      if (ptr % 16n !== 0n) throw new Error(`block-sparse prefill: ${name} must be 16-byte aligned`);
    }
    const qRowStride = a.qRowStride ?? H * D;
    if (!Number.isInteger(qRowStride) || qRowStride < H * D || qRowStride % 8 !== 0) {
      throw new Error(`block-sparse prefill: qRowStride must be an integer >= H·D and a multiple of 8 (got ${qRowStride})`);
    }
    this.prepare().launch(
      {
        grid: [Math.ceil(numQueryTiles / WARPS), H, 1],
        block: [32 * WARPS, 1, 1],
        sharedBytes: blockSparseSharedBytes(D),
        stream: this.rt.stream,
      },
      [a.q, a.k, a.v, a.out, a.layout.tileOffsets.ptr, a.layout.keyTiles.ptr, T, H, Hkv, qRowStride, a.kvStride, a.queryStart,
        a.kvLen, numQueryTiles, a.scale * LOG2E],
    );
  }
}
