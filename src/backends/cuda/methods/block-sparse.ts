/**
 * Block-Sparse prefill on the GPU: the CPU method (src/methods/block-sparse.ts) with its estimation
 * and attention as kernels. Same parameters and defaults (chunkSize 16, topChunks or a target
 * sparsity turned into t by the method's own closed form), same selection (chunk 0, m - 1, m forced,
 * the best-scoring rest by pooled q·k, ties to the lower chunk), same exact causal mask, and the same
 * per-head pair counts, so achieved sparsity matches the CPU's.
 *
 * Per call: BlockSparseEstimator writes the chunk lists [H, B, t] on the device (timed with events:
 * EstimationTiming), BlockSparseFlashPrefill attends over them. Nothing comes back to the host; the
 * counts need no content (chunk m keeps min(m + 1, t) chunks whatever the scores).
 */
import { type HeadCounts, emptyCounts } from '../../../engine/attention.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import { BlockSparsePrefill, blockSparseMethod, exactBlockSparsePairs } from '../../../methods/block-sparse.js';
import { type ChunkLists, DEVICE_TILE, assertDeviceChunkSize } from '../block-sparse-layout.js';
import type { EventHandle } from '../context.js';
import { BlockSparseEstimator } from '../kernels/block-sparse-estimate.js';
import {
  BlockSparseFlashPrefill, type BlockSparseKernelOptions, type DeviceChunkLists,
  SUPPORTED_BLOCK_SPARSE_HEAD_DIMS, allocateChunkLists, downloadChunkLists, releaseChunkLists,
} from '../kernels/block-sparse-prefill.js';
import type { CudaRuntime } from '../runtime.js';
import type {
  DeviceMethodOptions, DevicePrefillCall, DevicePrefillFactory, DevicePrefillMethod, EstimationTiming,
} from './contract.js';

function declaredDefault(name: string): unknown {
  return blockSparseMethod.params.find((p) => p.name === name)?.default;
}

function integerParam(params: Record<string, unknown>, name: string, min: number): number | null {
  const v = params[name] ?? declaredDefault(name);
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new Error(`block_sparse (GPU): ${name} must be an integer >= ${min} (got ${String(v)})`);
  return v;
}

/** Kernel variant; none: the launcher's choice (`blockSparseKernelChoice`: wgmma on Hopper, else mma.sync h1m1). */
export type BlockSparseDeviceOptions = BlockSparseKernelOptions;

export class BlockSparseDevicePrefill implements DevicePrefillMethod, EstimationTiming {
  readonly id = 'block_sparse';
  readonly requiresWholePrompt = true;
  /** The CPU method object: the source of t (topChunksFor) and of the selection rules. */
  readonly reference: BlockSparsePrefill;
  /** t of the last call. */
  lastTopChunks: number | null = null;
  private readonly estimator: BlockSparseEstimator;
  private readonly attention: BlockSparseFlashPrefill;
  private lists: DeviceChunkLists | null = null;
  private readonly events: [EventHandle, EventHandle];
  private measured = false;

  constructor(
    private readonly rt: CudaRuntime, config: ModelConfig, chunkSize: number, sparsity: number | null, topChunks: number | null,
    options: BlockSparseDeviceOptions = {},
  ) {
    assertDeviceChunkSize(chunkSize);
    const shape = { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim };
    this.reference = new BlockSparsePrefill(chunkSize, sparsity, topChunks);
    this.estimator = new BlockSparseEstimator(rt, shape, chunkSize);
    // The kernel options pass through as given: none lets the launcher choose (wgmma on Hopper).
    this.attention = new BlockSparseFlashPrefill(rt, shape, options);
    // Compile (or load) the kernels now, so the first call's estimation time holds no compilation.
    this.estimator.prepare();
    this.attention.prepare(chunkSize);
    this.events = [rt.cuda.createEvent(), rt.cuda.createEvent()];
  }

  get chunkSize(): number {
    return this.reference.chunkSize;
  }

  prefill(call: DevicePrefillCall): HeadCounts {
    const { shape, numQueries: n, cache } = call;
    const { numHeads: H, headDim: D } = shape;
    if (call.queryStart !== 0 || !call.isLastChunk || cache.length !== n) {
      throw new Error(`block_sparse (GPU) needs the whole prompt in one call (got queries ${call.queryStart}..${call.queryStart + n} of a ${cache.length}-row cache, last chunk: ${call.isLastChunk})`);
    }
    if (H !== this.estimator.shape.numHeads || shape.numKvHeads !== this.estimator.shape.numKvHeads || D !== this.estimator.shape.headDim) {
      throw new Error(`block_sparse (GPU): call shape ${H}/${shape.numKvHeads}/${D} differs from the model's`);
    }
    const c = this.chunkSize;
    const t = this.reference.topChunksFor(n);
    this.lastTopChunks = t;
    const lists = this.listsFor(H, n, t);
    this.rt.cuda.record(this.events[0], this.rt.stream);
    this.estimator.run({ q: call.q, qRowStride: call.qRowStride, k: cache.keys.ptr, kvStride: cache.capacity, numTokens: n, lists });
    this.rt.cuda.record(this.events[1], this.rt.stream);
    this.measured = true;
    this.attention.run({
      q: call.q, qRowStride: call.qRowStride, k: cache.keys.ptr, v: cache.values.ptr, out: call.out, lists,
      numQueries: n, kvLen: n, kvStride: cache.capacity, scale: shape.scale,
    });
    const counts = emptyCounts(H);
    const attended = exactBlockSparsePairs(n, c, t);
    counts.attended.fill(attended);
    counts.dense.fill((n * (n + 1)) / 2);
    return counts;
  }

  lastEstimationMs(): number | null {
    return this.measured ? this.rt.cuda.elapsedMs(this.events[0], this.events[1]) : null;
  }

  /** The last call's chunk lists, read back (waits for the stream): tests compare them with the CPU's. */
  downloadLastLists(): ChunkLists {
    if (!this.lists) throw new Error('block_sparse (GPU): no call yet');
    return downloadChunkLists(this.rt, this.lists);
  }

  reset(): void {
    this.rt.synchronize();
    if (this.lists) releaseChunkLists(this.rt, this.lists);
    this.lists = null;
    this.estimator.release();
    this.attention.release();
  }

  private listsFor(H: number, n: number, t: number): DeviceChunkLists {
    const l = this.lists;
    if (l && l.numHeads === H && l.numTokens === n && l.stride === t) return l;
    if (l) {
      this.rt.synchronize();
      releaseChunkLists(this.rt, l);
    }
    this.lists = allocateChunkLists(this.rt, H, n, this.chunkSize, t);
    return this.lists;
  }
}

/** The GPU Block-Sparse factory; create() returns the concrete method (EstimationTiming, downloadLastLists). */
export const blockSparseDeviceFactory = {
  methodId: 'block_sparse' as const,
  unsupported(config: ModelConfig): string | null {
    if (!(SUPPORTED_BLOCK_SPARSE_HEAD_DIMS as readonly number[]).includes(config.headDim)) {
      return `head dim ${config.headDim} (the block-sparse kernels take ${SUPPORTED_BLOCK_SPARSE_HEAD_DIMS.join(' or ')})`;
    }
    if (!(config.numKvHeads > 0) || config.numHeads % config.numKvHeads !== 0) {
      return `${config.numHeads} query heads are not a multiple of ${config.numKvHeads} KV heads`;
    }
    if (config.attnLogitSoftcap !== null) return 'attention logit soft-capping (the block-sparse kernel has none)';
    return null;
  },
  create(rt: CudaRuntime, config: ModelConfig, options: DeviceMethodOptions): BlockSparseDevicePrefill {
    const reason = this.unsupported(config);
    if (reason) throw new Error(`block_sparse (GPU) cannot run this model: ${reason}`);
    const params = options.params ?? {};
    const chunkSize = integerParam(params, 'chunkSize', 1)!;
    if (chunkSize % DEVICE_TILE !== 0) throw new Error(`block_sparse (GPU): chunkSize ${chunkSize} must be a multiple of ${DEVICE_TILE}`);
    const topChunks = integerParam(params, 'topChunks', 3);
    const sparsity = options.sparsity ?? null;
    if (sparsity !== null && !(sparsity >= 0 && sparsity < 1)) throw new Error(`block_sparse (GPU): sparsity must lie in [0, 1) (got ${sparsity})`);
    return new BlockSparseDevicePrefill(rt, config, chunkSize, sparsity, topChunks);
  },
} satisfies DevicePrefillFactory;
