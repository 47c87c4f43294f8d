/**
 * Launcher for decode-attention.cu: one new token's attention over a per-KV-head cache, split over
 * the context (decode_partial) and merged, either by a second kernel (decode_combine_fold by default,
 * decode_combine) or, fused (v6, not faster in graphs), by the last partial blocks of each KV head to
 * finish; or (v8, merge 'cluster') in one launch of thread-block clusters that merge through
 * distributed shared memory (decode_cluster). Workspace comes from the runtime's pool.
 */
import type { DevicePtr } from '../context.js';
import { type CudaKernel, PORTABLE_CLUSTER_BLOCKS } from '../module.js';
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

/**
 * A decode step inside a captured graph: the row count is read on the device when the kernel runs,
 * so one graph serves every step. kvLen = *lengthFrom + lengthOffset (e.g. the positions buffer's
 * entry for the new token, offset 1). `splits` is fixed at capture (planForCapacity).
 */
export interface DeviceLengthDecodeArgs {
  q: DevicePtr;
  k: DevicePtr;
  v: DevicePtr;
  out: DevicePtr;
  /** int32 on the device. */
  lengthFrom: DevicePtr;
  lengthOffset: number;
  kvStride: number;
  scale: number;
  slidingWindow?: number | null;
  splits: number;
  /**
   * fp32 scratch of decodeWorkspaceBytes(shape, splits) bytes that the caller holds as long as the
   * graph lives (pool blocks released after capture could be handed out again while it replays).
   */
  workspace: DevicePtr;
}

/** Bytes of the partial outputs and (max, sum) pairs of `splits` splits. */
export function decodeWorkspaceBytes(shape: DecodeShape, splits: number): number {
  return splits * shape.numHeads * (shape.headDim + 2) * 4;
}

/**
 * Codegen and planning knobs (the benchmark times several; the defaults are the fastest measured).
 * threads: per partial block; unroll: rows per row slot per loop step; wave: the fraction of one
 * full wave of partial blocks the split count aims at (short contexts: fewer, longer splits).
 */
export interface DecodeTuning {
  /** 512 only with merge 'cluster' (one block per multiprocessor). */
  threads: 128 | 256 | 512;
  unroll: 2 | 4;
  wave: number;
  /** Launch the combine as a programmatic dependent of the partial grid (sm_90), hiding its launch. */
  pdl?: boolean;
  /**
   * How the splits are merged. By a second kernel, one block per query head: 'combine' (v5: split
   * weights first, then the outputs) or 'fold' (v6: each thread folds its splits' (max, sum, output)
   * online, one L2 round trip). Or inside the partial launch (v6, per-KV-head ticket counters owned
   * by the kernel object, reset in the kernel): 'last-block' (the last partial block of each KV head
   * to finish merges its GQA group) or 'per-head' (the last GROUP blocks of each KV head merge one
   * query head each, those before the last waiting for it; needs the whole grid resident, i.e. at
   * most one wave). pdl only with a combine kernel. Or 'cluster' (v8, sm_90): one launch of
   * thread-block clusters, `cluster` blocks (splits) per KV head or per subset of its query heads, each
   * block keeping its partial in shared memory and merging a slice of the output from its peers'
   * (distributed shared memory); no workspace, no counters, `wave` unused. Measured slower than
   * 'fold' at every n on the H100 (docs/perf.md, decode v8: only 7 clusters of 16 one-per-SM blocks
   * are resident, and where they fit one wave the SMs no cluster covers cost more than the combine).
   */
  merge?: DecodeMerge;
  /** merge 'cluster': blocks per cluster, i.e. splits of the context (2, 4, 8 or 16; default 16). */
  cluster?: number;
  /**
   * merge 'cluster': clusters per KV head (1, 2, 4 or 8, dividing the GQA group; default 1), each
   * serving group / subsets of its query heads, so K and V are read `subsets` times (the repeats mostly
   * from L2) in exchange for more blocks.
   */
  subsets?: number;
  /**
   * v7: rows reach the block through a ring of this many shared-memory stages (2..8), each one loop
   * step of K and V requested by one thread with Hopper bulk copies (cp.async.bulk) and completed on an
   * mbarrier; 0 or absent: v3-v6's register double buffering.
   */
  stages?: number;
}

export type DecodeMerge = 'combine' | 'fold' | 'last-block' | 'per-head' | 'cluster';
const MERGE_CODE: Record<DecodeMerge, number> = { combine: 0, fold: 0, 'last-block': 1, 'per-head': 2, cluster: 0 };
const MERGE_LABEL: Record<DecodeMerge, string> = { combine: '', fold: 'c', 'last-block': 'f', 'per-head': 'fh', cluster: 'k' };
const DEFAULT_CLUSTER = 16;
/** At 512 threads the register cap is 128 per thread: query and accumulator registers fit up to 4 heads per block. */
const MAX_HEADS_PER_512_THREAD_BLOCK = 4;
/** Merges done by a kernel of their own after the partial grid. */
function mergeKernel(m: DecodeMerge): 'decode_combine' | 'decode_combine_fold' | null {
  return m === 'combine' ? 'decode_combine' : m === 'fold' ? 'decode_combine_fold' : null;
}

/**
 * Fastest measured on the H100 (docs/perf.md, decode v6): 256 threads, two rows per slot per step,
 * one wave, the one-round-trip combine kernel ('fold': 0.1-0.3 us ahead of v5's combine at every n
 * in the same run; the merges inside the partial launch were 1-2.5 us slower in graphs, v8's
 * cluster launch 1.8 us slower at 8K even where its clusters fit one wave). GQA groups
 * whose 256-thread slot buffers would not fit 48 KB of static shared memory (threads · group · 32
 * bytes) fall back to 128 threads.
 */
export const DEFAULT_DECODE_TUNING: DecodeTuning = { threads: 256, unroll: 2, wave: 1, merge: 'fold' };
/** v6, the default where the device has no thread-block clusters (before sm_90) if the default is ever 'cluster'. */
const SPLIT_K_DECODE_TUNING: DecodeTuning = { threads: 256, unroll: 2, wave: 1, merge: 'fold' };
const STATIC_SHARED_LIMIT = 48 * 1024;

export function decodeTuningLabel(t: DecodeTuning): string {
  if (t.merge === 'cluster') {
    const subsets = (t.subsets ?? 1) > 1 ? `s${t.subsets}` : '';
    return `t${t.threads}u${t.unroll}k${t.cluster ?? DEFAULT_CLUSTER}${subsets}`;
  }
  const ring = t.stages ? `b${t.stages}` : '';
  return `t${t.threads}u${t.unroll}w${t.wave}${ring}${t.pdl ? 'p' : ''}${MERGE_LABEL[t.merge ?? 'combine']}`;
}

/**
 * Dynamic shared memory of a partial block: with a ring (v7), its stages (one loop step of K and V
 * each: threads · unroll · 32 bytes), which the slot buffers reuse at the end, so at least those;
 * without, none (the slot buffers are static).
 */
export function decodeDynamicSharedBytes(headDim: number, group: number, tuning: DecodeTuning): number {
  const slots = tuning.threads / (headDim / 8);
  // decode_cluster keeps its slot buffers (group = heads per block) in dynamic shared memory.
  if (tuning.merge === 'cluster') return slots * group * (headDim + 2) * 4;
  if (!tuning.stages) return 0;
  return Math.max(tuning.stages * tuning.threads * tuning.unroll * 32, slots * group * (headDim + 2) * 4);
}

const LOG2E = 1.4426950408889634;
/** Static shared memory beside a ring (its 2 x 8 mbarriers of 8 bytes and, in segment decode, the staged segment starts), rounded up. */
const RING_STATIC_BYTES = 4096;
const COMBINE_THREADS = 256;
/** The combine's dynamic shared memory (one weight per split) beside its 4 KB of static arrays. */
const MAX_COMBINE_SHARED_BYTES = 40 * 1024;
/** The kernel's "no window" value: wider than any context. */
const NO_WINDOW = 1 << 30;

/** Rows the block covers per step of its loop (row slots x unroll); chunks are multiples of it. */
export function decodeRowsPerStep(headDim: number, tuning: DecodeTuning = DEFAULT_DECODE_TUNING): number {
  return (tuning.threads / (headDim / 8)) * tuning.unroll;
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
export function planDecode(
  shape: DecodeShape, kvLen: number, multiprocessors: number, blocksPerSM: number, tuning: DecodeTuning = DEFAULT_DECODE_TUNING,
): DecodePlan {
  if (!(kvLen > 0)) throw new Error(`decode plan: kvLen must be positive (got ${kvLen})`);
  if (!(tuning.wave > 0)) throw new Error(`decode plan: wave fraction must be positive (got ${tuning.wave})`);
  const step = decodeRowsPerStep(shape.headDim, tuning);
  const targetSplits = Math.max(1, Math.floor((Math.max(1, blocksPerSM) * multiprocessors * tuning.wave) / shape.numKvHeads));
  const chunk = Math.max(2 * step, Math.ceil(Math.ceil(kvLen / targetSplits) / step) * step);
  const splits = Math.ceil(kvLen / chunk);
  // The combine keeps one weight per split in shared memory.
  if (splits * 4 > MAX_COMBINE_SHARED_BYTES) throw new Error(`decode plan: ${splits} splits exceed the combine's shared memory`);
  return { chunk, splits };
}

/**
 * merge 'cluster': `cluster` splits per KV head (or subset), each a whole number of loop steps; the
 * kernel derives the same chunk from a length read on the device. Trailing splits of short contexts
 * are empty.
 */
export function planClusterDecode(headDim: number, kvLen: number, tuning: DecodeTuning): DecodePlan {
  if (!(kvLen > 0)) throw new Error(`decode plan: kvLen must be positive (got ${kvLen})`);
  const step = decodeRowsPerStep(headDim, tuning);
  const splits = tuning.cluster ?? DEFAULT_CLUSTER;
  return { chunk: Math.ceil(Math.ceil(kvLen / splits) / step) * step, splits };
}

export class DecodeAttentionKernel {
  private readonly group: number;
  /** counters: [Hkv, 2] int32 tickets of the in-kernel merges (zero between launches), 0n when a kernel merges. */
  /** clusters: resident clusters of merge 'cluster' (cuOccupancyMaxActiveClusters), else null. */
  private kernels: {
    partial: CudaKernel; combine: CudaKernel | null; blocksPerSM: number; counters: DevicePtr; sharedBytes: number; clusters: number | null;
  } | null = null;
  readonly tuning: DecodeTuning;

  constructor(private readonly rt: CudaRuntime, readonly shape: DecodeShape, tuning: Partial<DecodeTuning> = {}) {
    const clustersAvailable = rt.cuda.info.computeCapability[0] >= 9;
    // A default of merge 'cluster' falls back to v6 without clusters; asked for explicitly, it is an error.
    const base = DEFAULT_DECODE_TUNING.merge === 'cluster' && !clustersAvailable && tuning.merge === undefined ? SPLIT_K_DECODE_TUNING : DEFAULT_DECODE_TUNING;
    const wanted = { ...base, ...tuning };
    if (wanted.merge === 'cluster' && !clustersAvailable) throw new Error(`decode attention: merge 'cluster' needs sm_90 (this device is ${rt.cuda.info.arch})`);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (D !== 64 && D !== 128 && D !== 256) throw new Error(`decode attention: head dim ${D} unsupported (64, 128 or 256)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`decode attention: ${H} query heads are not a multiple of ${Hkv} KV heads`);
    this.group = H / Hkv;
    if (this.group > 8) throw new Error(`decode attention: GQA group ${this.group} > 8 unsupported`);
    if (wanted.merge === 'cluster') {
      this.tuning = checkClusterTuning(wanted, this.group);
      return;
    }
    if (wanted.threads === 512) throw new Error(`decode attention: 512 threads per block only with merge 'cluster'`);
    // The partial block keeps every row slot's outputs in static shared memory (threads · group · 32 B).
    this.tuning = wanted.threads * this.group * 32 + 1024 > STATIC_SHARED_LIMIT ? { ...wanted, threads: 128 } : wanted;
    const stages = this.tuning.stages ?? 0;
    if (!Number.isInteger(stages) || (stages !== 0 && (stages < 2 || stages > 8))) throw new Error(`decode attention: stages must be 0 or 2..8 (got ${stages})`);
    if (mergeKernel(this.tuning.merge ?? 'combine') === null && this.tuning.pdl) {
      throw new Error(`decode attention: pdl applies to the combine kernel, which merge '${this.tuning.merge}' has none of`);
    }
  }

  /** Query heads one block serves: the GQA group, or its share with merge 'cluster' and subsets. */
  private get headsPerBlock(): number {
    return this.group / (this.tuning.merge === 'cluster' ? this.tuning.subsets ?? 1 : 1);
  }

  /** Compiles (or loads from the cache) the kernels for this shape. */
  prepare() {
    if (!this.kernels && this.tuning.merge === 'cluster') {
      const t = this.tuning;
      const cluster = t.cluster ?? DEFAULT_CLUSTER;
      const mod = this.rt.module('decode-attention.cu', {
        HEAD_DIM: this.shape.headDim, GROUP: this.headsPerBlock, DECODE_THREADS: t.threads, DECODE_UNROLL: t.unroll, DECODE_CLUSTER: cluster,
        DECODE_SUBSETS: t.subsets ?? 1,
      });
      const partial = mod.kernel('decode_cluster', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
      if (cluster > PORTABLE_CLUSTER_BLOCKS) partial.allowNonPortableClusters();
      const sharedBytes = decodeDynamicSharedBytes(this.shape.headDim, this.headsPerBlock, t);
      const clusters = partial.maxActiveClusters([cluster, 1, 1], t.threads, sharedBytes);
      if (clusters < 1) throw new Error(`decode attention: a cluster of ${cluster} blocks of ${t.threads} threads does not fit this device`);
      this.kernels = { partial, combine: null, blocksPerSM: partial.maxActiveBlocksPerSM(t.threads, sharedBytes), counters: 0n, sharedBytes, clusters };
    }
    if (!this.kernels) {
      const t = this.tuning;
      const mod = this.rt.module('decode-attention.cu', {
        HEAD_DIM: this.shape.headDim, GROUP: this.group, DECODE_THREADS: t.threads, DECODE_UNROLL: t.unroll, DECODE_FUSED: MERGE_CODE[t.merge ?? 'combine'],
        ...(t.stages ? { DECODE_STAGES: t.stages } : {}),
      });
      const partial = mod.kernel('decode_partial',
        ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'ptr', 'ptr']);
      // The tickets live as long as this object (a captured graph keeps using them). Fresh memory
      // from the driver, not the pool: no queued kernel can still own it, so a synchronous upload of
      // zeros is ordered before every launch, also when this first runs inside a graph capture.
      let counters: DevicePtr = 0n;
      if (mergeKernel(t.merge ?? 'combine') === null) {
        counters = this.rt.cuda.alloc(this.shape.numKvHeads * 2 * 4);
        this.rt.cuda.upload(counters, new Int32Array(this.shape.numKvHeads * 2));
      }
      const sharedBytes = decodeDynamicSharedBytes(this.shape.headDim, this.group, t);
      // The ring's barriers are static shared memory beside it: the dynamic limit must leave them room
      // (the default allows 48 KB of static and dynamic together).
      if (sharedBytes > 0) partial.ensureSharedBytes(sharedBytes + RING_STATIC_BYTES);
      this.kernels = {
        partial,
        combine: mod.kernel(mergeKernel(t.merge ?? 'combine') ?? 'decode_combine', ['ptr', 'ptr', 'ptr', 'i32', 'i32']),
        blocksPerSM: partial.maxActiveBlocksPerSM(t.threads, sharedBytes),
        counters,
        sharedBytes,
        clusters: null,
      };
    }
    return this.kernels;
  }

  /**
   * merge 'cluster': clusters of this tuning resident at once, and how many one decode launches
   * (KV heads x subsets); more launched than resident run in waves. null for the other merges.
   */
  clusterOccupancy(): { resident: number; launched: number } | null {
    const { clusters } = this.prepare();
    return clusters === null ? null : { resident: clusters, launched: this.shape.numKvHeads * (this.tuning.subsets ?? 1) };
  }

  plan(kvLen: number): DecodePlan {
    if (this.tuning.merge === 'cluster') return planClusterDecode(this.shape.headDim, kvLen, this.tuning);
    return planDecode(this.shape, kvLen, this.rt.cuda.info.multiprocessors, this.prepare().blocksPerSM, this.tuning);
  }

  /**
   * The split count of a graph-captured decode that serves every length up to `capacity` rows (or the
   * window): the plan of the longest; shorter steps leave trailing splits empty.
   */
  planForCapacity(capacity: number, slidingWindow: number | null = null): number {
    return this.plan(slidingWindow === null ? capacity : Math.min(capacity, slidingWindow)).splits;
  }

  run(a: DecodeArgs): DecodePlan {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    if (!(a.kvLen > 0) || a.kvLen > a.kvStride) throw new Error(`decode attention: need 0 < kvLen <= kvStride (got ${a.kvLen}, ${a.kvStride})`);
    // Rows are read as 16-byte vectors: q, k and v must start on a 16-byte boundary.
    for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v]] as const) {
      if (ptr % 16n !== 0n) throw new Error(`decode attention: ${name} must be 16-byte aligned`);
    }
    // A window is a row offset: the last W rows of every head, same stride (applied in the kernel).
    const window = a.slidingWindow ?? null;
    if (window !== null && (!Number.isInteger(window) || window < 1)) throw new Error(`decode attention: sliding window must be a positive integer (got ${window})`);
    if (window !== null && a.headLengths) throw new Error('decode attention: sliding window with per-head lengths is not supported');
    const plan = this.plan(window === null ? a.kvLen : Math.min(a.kvLen, window));
    this.launch(a.q, a.k, a.v, a.out, a.headLengths ?? 0n, 0n, 0, a.kvStride, a.kvLen, plan, window ?? NO_WINDOW, a.scale);
    return plan;
  }

  /** A decode whose row count is read on the device (see DeviceLengthDecodeArgs); capturable. */
  runDeviceLength(a: DeviceLengthDecodeArgs): void {
    for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v]] as const) {
      if (ptr % 16n !== 0n) throw new Error(`decode attention: ${name} must be 16-byte aligned`);
    }
    if (a.lengthFrom === 0n || a.lengthFrom % 4n !== 0n) throw new Error('decode attention: lengthFrom must be an aligned int32 device pointer');
    if (!Number.isInteger(a.splits) || a.splits < 1) throw new Error(`decode attention: splits must be a positive integer (got ${a.splits})`);
    const window = a.slidingWindow ?? null;
    if (window !== null && (!Number.isInteger(window) || window < 1)) throw new Error(`decode attention: sliding window must be a positive integer (got ${window})`);
    // chunk 0: the kernel derives it from the length it reads.
    if (a.workspace === 0n || a.workspace % 16n !== 0n) throw new Error('decode attention: the workspace must be a 16-byte aligned device pointer');
    this.launch(a.q, a.k, a.v, a.out, 0n, a.lengthFrom, a.lengthOffset, a.kvStride, 1, { splits: a.splits, chunk: 0 }, window ?? NO_WINDOW, a.scale,
      a.workspace);
  }

  private launch(
    q: DevicePtr, k: DevicePtr, v: DevicePtr, out: DevicePtr, headLengths: DevicePtr, lengthFrom: DevicePtr, lengthOffset: number,
    kvStride: number, kvLen: number, plan: DecodePlan, window: number, scale: number, workspace: DevicePtr | null = null,
  ): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    if (plan.splits * 4 > MAX_COMBINE_SHARED_BYTES) throw new Error(`decode attention: ${plan.splits} splits exceed the combine's shared memory`);
    const { partial, combine, counters, blocksPerSM, sharedBytes: partialShared } = this.prepare();
    const merge = this.tuning.merge ?? 'combine';
    if (merge === 'cluster') {
      // One cluster per (KV head, subset) spans the grid's x: the kernel reads its split from its cluster rank.
      const cluster = this.tuning.cluster ?? DEFAULT_CLUSTER;
      if (plan.splits !== cluster) throw new Error(`decode attention: merge 'cluster' takes ${cluster} splits (got ${plan.splits})`);
      partial.launch(
        { grid: [cluster, Hkv * (this.tuning.subsets ?? 1), 1], block: [this.tuning.threads, 1, 1], sharedBytes: partialShared, stream: this.rt.stream,
          clusterDims: [cluster, 1, 1] },
        [q, k, v, out, headLengths, lengthFrom, lengthOffset, kvStride, kvLen, plan.chunk, window, scale * LOG2E],
      );
      return;
    }
    // 'per-head' mergers wait for the last block of their KV head: every block must be resident.
    const residentBlocks = this.rt.cuda.info.multiprocessors * blocksPerSM;
    if (merge === 'per-head' && plan.splits * Hkv > residentBlocks) {
      throw new Error(`decode attention: merge 'per-head' needs the grid in one wave (${plan.splits * Hkv} blocks > ${residentBlocks} resident)`);
    }
    const pooled = workspace === null ? this.rt.pool.acquire(decodeWorkspaceBytes(this.shape, plan.splits)) : null;
    const partO = workspace ?? pooled!.ptr;
    const partML = partO + BigInt(plan.splits * H * D * 4);
    const stream = this.rt.stream;
    partial.launch(
      { grid: [plan.splits, Hkv, 1], block: [this.tuning.threads, 1, 1], sharedBytes: partialShared, stream },
      [q, k, v, partO, partML, headLengths, lengthFrom, lengthOffset, H, kvStride, kvLen, plan.chunk, window, scale * LOG2E,
        out, counters],
    );
    if (mergeKernel(merge) !== null && combine) {
      // decode_combine keeps one weight per split in dynamic shared memory; the fold needs none.
      const sharedBytes = merge === 'combine' ? plan.splits * 4 : 0;
      combine.launch(
        { grid: [H, 1, 1], block: [COMBINE_THREADS, 1, 1], sharedBytes, stream, programmaticDependency: this.tuning.pdl ?? false },
        [partO, partML, out, H, plan.splits],
      );
    }
    // Stream order makes reuse safe: later work on this stream runs after the combine has read them.
    if (pooled) this.rt.pool.release(pooled);
  }
}

/** Bytes decode attention must read: every valid K and V row once. */
export function decodeBytes(shape: DecodeShape, kvLen: number): number {
  return 2 * shape.numKvHeads * kvLen * shape.headDim * 2;
}

/** A merge 'cluster' tuning made concrete for a GQA group, or a clear error. */
function checkClusterTuning(t: DecodeTuning, group: number): DecodeTuning {
  const cluster = t.cluster ?? DEFAULT_CLUSTER;
  const subsets = t.subsets ?? 1;
  if (![2, 4, 8, 16].includes(cluster)) throw new Error(`decode attention: cluster must be 2, 4, 8 or 16 blocks (got ${cluster})`);
  if (![1, 2, 4, 8].includes(subsets) || group % subsets !== 0) {
    throw new Error(`decode attention: subsets must be 1, 2, 4 or 8 and divide the GQA group ${group} (got ${subsets})`);
  }
  if (t.stages || t.pdl) throw new Error(`decode attention: merge 'cluster' takes neither a bulk-copy ring nor pdl`);
  // 512 threads cap registers at 128: more heads per block would spill, so take 256 threads then.
  const threads = t.threads === 512 && group / subsets > MAX_HEADS_PER_512_THREAD_BLOCK ? 256 : t.threads;
  return { ...t, threads, cluster, subsets };
}
