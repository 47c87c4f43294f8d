/**
 * Launcher for block-sparse-estimate.cu: the Block-Sparse method's importance estimation on the GPU
 * (pooled chunks, pooled scores, top-t key chunks per query chunk), writing the device chunk lists
 * that BlockSparseFlashPrefill reads. Nothing goes back to the host.
 *
 * Workspaces (kept between runs, grown when a longer prompt comes): pooled queries [H, B, D] and keys
 * [Hkv, B, D] fp32, and the scores of a batch of heads [Hb, B, B] fp32, Hb chosen so the batch stays
 * under `scoreBudgetBytes` (one head at least).
 */
import type { DevicePtr } from '../context.js';
import type { DeviceBuffer } from '../memory-pool.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { DeviceChunkLists } from './block-sparse-prefill.js';
import type { PrefillShape } from './flash-prefill.js';

export interface BlockSparseEstimateArgs {
  /** [n, H, D] bf16 queries (rows qRowStride apart). */
  q: DevicePtr;
  qRowStride?: number;
  /** [Hkv, kvStride, D] bf16 keys; rows [0, n) are the prompt's. */
  k: DevicePtr;
  kvStride: number;
  numTokens: number; // n
  /** Output: lists [H, B, t] and counts [H, B]; t = lists.stride is the method's top_chunks. */
  lists: DeviceChunkLists;
}

const SCORE_TILE = 128;

/** Device milliseconds of each estimation phase (runTimedPhases). */
export interface EstimationPhases {
  poolMs: number;
  scoresMs: number;
  selectMs: number;
}
const SELECT_THREADS = 256;
const DEFAULT_SCORE_BUDGET = 1 << 30;

export class BlockSparseEstimator {
  private kernels: { pool: CudaKernel; scores: CudaKernel; select: CudaKernel } | null = null;
  private readonly buffers = new Map<string, DeviceBuffer>();

  constructor(
    private readonly rt: CudaRuntime,
    readonly shape: PrefillShape,
    readonly chunkSize: number,
    private readonly scoreBudgetBytes = DEFAULT_SCORE_BUDGET,
  ) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`block-sparse estimate: ${H} query heads are not a multiple of ${Hkv} KV heads`);
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`block-sparse estimate: chunk size must be a positive integer (got ${chunkSize})`);
    if (D % 16 !== 0 || D > 1024) throw new Error(`block-sparse estimate: head dim ${D} must be a multiple of 16, at most 1024`);
  }

  prepare(): { pool: CudaKernel; scores: CudaKernel; select: CudaKernel } {
    if (!this.kernels) {
      const mod = this.rt.module('block-sparse-estimate.cu', {});
      this.kernels = {
        pool: mod.kernel('pool_chunks', ['ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']),
        scores: mod.kernel('chunk_scores', ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32']),
        select: mod.kernel('select_top_chunks', ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32']),
      };
    }
    return this.kernels;
  }

  /** Heads whose scores one batch holds for B chunks. */
  headsPerBatch(numChunks: number): number {
    return Math.max(1, Math.min(this.shape.numHeads, Math.floor(this.scoreBudgetBytes / (numChunks * numChunks * 4))));
  }

  run(a: BlockSparseEstimateArgs): void {
    this.enqueue(a, null);
  }

  /**
   * The same work with events between the phases (waits for the stream): milliseconds of pooling,
   * pooled scores and selection, each summed over the head batches. For the benchmark's breakdown.
   */
  runTimedPhases(a: BlockSparseEstimateArgs): EstimationPhases {
    const events = Array.from({ length: 2 + 2 * this.shape.numHeads }, () => this.rt.cuda.createEvent());
    const used = this.enqueue(a, events);
    const phases: EstimationPhases = { poolMs: this.rt.cuda.elapsedMs(events[0], events[1]), scoresMs: 0, selectMs: 0 };
    for (let i = 1; i + 2 < used; i += 2) {
      phases.scoresMs += this.rt.cuda.elapsedMs(events[i], events[i + 1]);
      phases.selectMs += this.rt.cuda.elapsedMs(events[i + 1], events[i + 2]);
    }
    for (const e of events) this.rt.cuda.destroyEvent(e);
    return phases;
  }

  /** Enqueues the estimation; with `events`, records one before, between and after the phases (returns how many). */
  private enqueue(a: BlockSparseEstimateArgs, events: bigint[] | null): number {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const c = this.chunkSize, n = a.numTokens;
    const B = Math.ceil(n / c);
    const t = a.lists.stride;
    if (!(n > 0) || n > a.kvStride) throw new Error(`block-sparse estimate: need 0 < n <= kvStride (got ${n}, ${a.kvStride})`);
    if (a.lists.numHeads !== H || a.lists.numTokens !== n || a.lists.chunkSize !== c) {
      throw new Error(`block-sparse estimate: lists are for ${a.lists.numHeads} heads, ${a.lists.numTokens} tokens, chunk ${a.lists.chunkSize}; the call has ${H}, ${n}, ${c}`);
    }
    if (!(t >= 1 && t <= B)) throw new Error(`block-sparse estimate: top chunks ${t} must lie in 1..${B}`);
    const qRowStride = a.qRowStride ?? H * D;
    const selectShared = (B + Math.floor(B / 32) + 1) * 4;
    if (selectShared > this.rt.cuda.info.maxSharedPerBlockOptin) {
      throw new Error(`block-sparse estimate: ${B} chunks need ${selectShared} B of shared memory for the selection, the device allows ${this.rt.cuda.info.maxSharedPerBlockOptin}`);
    }
    const k = this.prepare();
    const stream = this.rt.stream;
    let recorded = 0;
    const mark = (): void => {
      if (events) this.rt.cuda.record(events[recorded++], stream);
    };
    const qPool = this.workspace('qPool', H * B * D * 4);
    const kPool = this.workspace('kPool', Hkv * B * D * 4);
    const Hb = this.headsPerBatch(B);
    const scores = this.workspace('scores', Hb * B * B * 4);
    mark();
    k.pool.launch({ grid: [B, H, 1], block: [D, 1, 1], sharedBytes: 0, stream }, [a.q, qPool.ptr, n, qRowStride, D, c, D, 1 / c]);
    k.pool.launch({ grid: [B, Hkv, 1], block: [D, 1, 1], sharedBytes: 0, stream }, [a.k, kPool.ptr, n, D, a.kvStride * D, c, D, 1 / c]);
    mark();
    const tiles = Math.ceil(B / SCORE_TILE);
    for (let h0 = 0; h0 < H; h0 += Hb) {
      const batch = Math.min(Hb, H - h0);
      k.scores.launch({ grid: [tiles, tiles, batch], block: [256, 1, 1], sharedBytes: 0, stream }, [qPool.ptr, kPool.ptr, scores.ptr, B, D, h0, H / Hkv, t]);
      mark();
      k.select.launch(
        { grid: [B, batch, 1], block: [SELECT_THREADS, 1, 1], sharedBytes: selectShared, stream },
        [scores.ptr, a.lists.lists.ptr, a.lists.counts.ptr, B, t, h0],
      );
      mark();
    }
    return recorded;
  }

  /** Returns the workspaces to the pool (after the stream's work is done). */
  release(): void {
    for (const b of this.buffers.values()) this.rt.pool.release(b);
    this.buffers.clear();
  }

  private workspace(name: string, bytes: number): DeviceBuffer {
    const have = this.buffers.get(name);
    if (have && have.capacity >= bytes) return have;
    if (have) {
      this.rt.synchronize(); // earlier launches may still use it
      this.rt.pool.release(have);
    }
    const buf = this.rt.pool.acquire(Math.max(4, bytes));
    this.buffers.set(name, buf);
    return buf;
  }
}
