/**
 * Launcher for segment-decode.cu: one new token's attention over per-unit lists of cache row
 * segments plus one tail segment shared by all units, split over the rows read and merged.
 *
 * Units: with a selection shared by a GQA group (Quest's share_pages, SnapKV's per-KV-head eviction)
 * unit = KV head and its g = H / Hkv query heads read its segments; with one selection per query
 * head, unit = query head. SegmentLists holds the lists in device memory, in the kernel's layout
 * (int32 per unit: count, list rows, uniform segment length or 0, unused, then (first row, first
 * logical row) pairs); the selection
 * kernels (quest.cu, snapkv.cu) write them there, and `upload` serves tests and fixed patterns.
 *
 * runGraph: the same decode with the new token's position (hence the tail and the chunk) read on the
 * device, for decode steps replayed from one captured CUDA graph; planGraph fixes its grid for a range
 * of steps so that every step reads the rows in the splits run() would use.
 */
import type { DevicePtr } from '../context.js';
import type { DeviceBuffer } from '../memory-pool.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';

export const SUPPORTED_SEGMENT_HEAD_DIMS = [64, 128] as const;
export const MAX_SEGMENT_GROUP = 8;

const LOG2E = 1.4426950408889634;
/** Static shared memory beside a ring (its 2 x 8 mbarriers of 8 bytes and, in segment decode, the staged segment starts), rounded up. */
const RING_STATIC_BYTES = 4096;
const COMBINE_THREADS = 256;
/** Static shared memory the partial kernel may use for its slot buffers (it asserts the same). */
const SLOT_SHARED_LIMIT = 46 * 1024 - 512 * 4;

/** One row segment: cache rows [start, start + length). */
export interface RowSegment {
  start: number;
  length: number;
}

/** Int32 words before a unit's (first row, first logical row) pairs: count, list rows, uniform length, unused. */
export const SEGMENT_HEADER_WORDS = 4;

/** Int32 words one unit's list takes for `maxSegments` segments. */
export function segmentListStride(maxSegments: number): number {
  return SEGMENT_HEADER_WORDS + 2 * maxSegments;
}

/** Per-unit segment lists on the device: [units, stride] int32. */
export class SegmentLists {
  readonly stride: number;
  readonly buffer: DeviceBuffer;

  constructor(private readonly rt: CudaRuntime, readonly units: number, readonly maxSegments: number) {
    if (!(units > 0) || !(maxSegments >= 0)) throw new Error(`segment lists: need units > 0 and maxSegments >= 0 (got ${units}, ${maxSegments})`);
    this.stride = segmentListStride(maxSegments);
    this.buffer = rt.pool.acquire(units * this.stride * 4);
  }

  get ptr(): DevicePtr {
    return this.buffer.ptr;
  }

  /**
   * Writes lists from the host (synchronous copy: call it only when no queued kernel still reads
   * them). lists[u]: unit u's segments in the order they are read.
   */
  upload(lists: RowSegment[][]): void {
    if (lists.length !== this.units) throw new Error(`segment lists: ${lists.length} lists for ${this.units} units`);
    this.rt.cuda.upload(this.buffer.ptr, encodeSegmentLists(lists, this.maxSegments));
  }

  release(): void {
    this.rt.pool.release(this.buffer);
  }
}

/** The kernel's int32 layout of `lists` (each at most maxSegments long). */
export function encodeSegmentLists(lists: RowSegment[][], maxSegments: number): Int32Array {
  const stride = segmentListStride(maxSegments);
  const words = new Int32Array(lists.length * stride);
  lists.forEach((segments, u) => {
    if (segments.length > maxSegments) throw new Error(`segment lists: unit ${u} has ${segments.length} segments, room for ${maxSegments}`);
    let logical = 0;
    segments.forEach((s, i) => {
      if (!Number.isInteger(s.start) || !Number.isInteger(s.length) || s.start < 0 || s.length < 0) {
        throw new Error(`segment lists: unit ${u} segment ${i} is not a valid row range (${s.start}, ${s.length})`);
      }
      words[u * stride + SEGMENT_HEADER_WORDS + 2 * i] = s.start;
      words[u * stride + SEGMENT_HEADER_WORDS + 1 + 2 * i] = logical;
      logical += s.length;
    });
    // A uniform length lets the kernel find a row's segment by division instead of a walk.
    const uniform = segments.length > 0 && segments[0].length > 0 && segments.every((s) => s.length === segments[0].length);
    words[u * stride] = segments.length;
    words[u * stride + 1] = logical;
    words[u * stride + 2] = uniform ? segments[0].length : 0;
  });
  return words;
}

export interface SegmentDecodeShape {
  numHeads: number; // H
  numKvHeads: number; // Hkv
  headDim: number; // D: 64 or 128
}

export interface SegmentDecodeArgs {
  /** [H, D] bf16 query of the new token. */
  q: DevicePtr;
  /** [Hkv, kvStride, D] bf16 keys and values. */
  k: DevicePtr;
  v: DevicePtr;
  kvStride: number;
  /** [H, D] bf16 output. */
  out: DevicePtr;
  segments: SegmentLists;
  /** Rows [tailStart, tailStart + tailRows) read by every unit after its list (tailRows >= 0). */
  tailStart: number;
  tailRows: number;
  /** The most rows any unit reads (its list rows + tailRows): sizes the splits. */
  maxRows: number;
  scale: number;
}

export interface SegmentDecodePlan {
  chunk: number;
  splits: number;
}

/** Threads per partial block and rows per slot per loop step (codegen parameters of the kernel). */
export interface SegmentDecodeTiling {
  threads: 128 | 256;
  unroll: 2 | 4;
  /**
   * v5: rows may reach the block through a ring of this many shared-memory stages (2..8), each one
   * loop step of K and V requested by one thread with Hopper bulk copies, one per run of consecutive
   * cache rows; 0 or absent: register double buffering (v3) only.
   */
  stages?: number;
  /**
   * v5, with stages: the ring serves chunks of at least this many loop steps, shorter ones take the
   * register path (a one-step chunk has nothing to pipeline, and the ring's barriers and single
   * issuing thread cost start-up time); 0 or absent: the ring serves every chunk.
   */
  ringMinSteps?: number;
}

/** Dynamic shared memory of a ring block: its stages, which the slot buffers reuse at the end. */
export function segmentRingSharedBytes(headDim: number, group: number, tiling: SegmentDecodeTiling): number {
  const slots = tiling.threads / (headDim / 8);
  return Math.max((tiling.stages ?? 0) * tiling.threads * tiling.unroll * 32, slots * group * (headDim + 2) * 4);
}

/** v2's tiling: 128 threads, 4 rows per slot per step. */
export const SEGMENT_TILING_V2: SegmentDecodeTiling = { threads: 128, unroll: 4 };

/**
 * 256 threads x 2 rows where the group's slot buffers fit in shared memory, else 128 x 4 (v3); with
 * 256 threads, chunks of 4 loop steps (128 rows at d = 128) or more go through a 4-stage bulk-copy
 * ring (v5: measured 90% of copy against 82% at 128K s = 0.5, slower only for one-step chunks).
 */
export function defaultSegmentTiling(headDim: number, group: number): SegmentDecodeTiling {
  const slots = 256 / (headDim / 8);
  return slots * group * headDim * 4 <= SLOT_SHARED_LIMIT ? { threads: 256, unroll: 2, stages: 4, ringMinSteps: 4 } : SEGMENT_TILING_V2;
}

/** Rows a block covers per loop step; chunks are multiples of it. */
export function segmentRowsPerStep(headDim: number, tiling: SegmentDecodeTiling = SEGMENT_TILING_V2): number {
  return (tiling.threads / (headDim / 8)) * tiling.unroll;
}

/**
 * One full wave of (split, unit) blocks, each streaming an equal chunk of whole loop steps. A chunk
 * may be a single step (the dense kernel keeps two): sparse reads are short, and there a block's
 * serial memory round trips cost more than the extra partials the combine reads.
 */
export function planSegmentDecode(
  headDim: number, units: number, maxRows: number, multiprocessors: number, blocksPerSM: number, tiling: SegmentDecodeTiling = SEGMENT_TILING_V2,
): SegmentDecodePlan {
  if (!(maxRows > 0)) throw new Error(`segment decode plan: maxRows must be positive (got ${maxRows})`);
  const step = segmentRowsPerStep(headDim, tiling);
  const targetSplits = segmentTargetSplits(units, multiprocessors, blocksPerSM);
  const chunk = Math.max(step, Math.ceil(Math.ceil(maxRows / targetSplits) / step) * step);
  const splits = Math.ceil(maxRows / chunk);
  return { chunk, splits };
}

/** The split count one full wave of (split, unit) blocks aims at (the kernel's device-tail chunk divides by it too). */
export function segmentTargetSplits(units: number, multiprocessors: number, blocksPerSM: number): number {
  return Math.max(1, Math.floor((Math.max(1, blocksPerSM) * multiprocessors) / units));
}

/** Bytes of the fp32 partials of `splits` splits: outputs [splits, H, D], then (max, sum) [splits, H, 2]. */
export function segmentWorkspaceBytes(numHeads: number, headDim: number, splits: number): number {
  return splits * numHeads * (headDim + 2) * 4;
}

/** Segment lists as the kernel reads them: SegmentLists, or lists in memory that a captured graph owns. */
export interface SegmentListView {
  readonly ptr: DevicePtr;
  readonly stride: number;
  readonly units: number;
}

/**
 * A segment decode recorded into a CUDA graph: what is fixed at capture for every step it will serve,
 * whose longest unit reads between minRows and maxRows rows (SegmentDecodeKernel.planGraph).
 */
export interface SegmentGraphLaunch {
  /** Grid splits: the most any step of the range takes; a step that needs fewer leaves the last ones empty. */
  splits: number;
  /** The eager plan's target split count, from which the kernel derives each step's chunk as run() does. */
  targetSplits: number;
  /** The bulk-copy ring serves every step (run()'s choice at the range's longest read), else registers. */
  ring: boolean;
}

/**
 * A decode step whose tail is read on the device (kernel SEG_DEVICE_TAIL): with p = *position, the
 * tail is cache rows [tailStart, p], tailStart being tailStarts[p] when given, else the fixed one.
 * Capturable: nothing is allocated or decided on the host per step.
 */
export interface SegmentDecodeGraphArgs {
  /** [H, D] bf16 query of the new token. */
  q: DevicePtr;
  /** [Hkv, kvStride, D] bf16 keys and values. */
  k: DevicePtr;
  v: DevicePtr;
  kvStride: number;
  /** [H, D] bf16 output. */
  out: DevicePtr;
  segments: SegmentListView;
  /** int32 on the device: the new token's position (its row is the last one read). */
  position: DevicePtr;
  tailStart: number;
  /** [> any replayed position] int32 on the device: a per-position tail start (null: tailStart for all). */
  tailStarts?: DevicePtr | null;
  /** Rows of the longest unit's list (the tail comes on top): the eager call's maxRows - tailRows. */
  maxListRows: number;
  launch: SegmentGraphLaunch;
  /** segmentWorkspaceBytes(H, D, launch.splits) bytes, held as long as the graph (16-byte aligned). */
  workspace: DevicePtr;
  scale: number;
}

/** segment_decode_partial's parameters, and the four the device-tail variant adds (position, tailStarts, maxListRows, targetSplits). */
const PARTIAL_PARAMS = ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32'] as const;
const DEVICE_TAIL_PARAMS = ['ptr', 'ptr', 'i32', 'i32'] as const;

/** A compiled partial kernel: the register path or the ring, with its occupancy and dynamic shared memory. */
interface PartialKernel { kernel: CudaKernel; blocksPerSM: number; sharedBytes: number }

export class SegmentDecodeKernel {
  /** Query heads per unit. */
  readonly group: number;
  /** Units per KV head. */
  readonly kvDiv: number;
  readonly units: number;
  readonly tiling: SegmentDecodeTiling;
  /** registers/ring: null where the tiling never takes that path; blocksPerSM: the occupancy the plan assumes. */
  private kernels: { registers: PartialKernel | null; ring: PartialKernel | null; combine: CudaKernel; blocksPerSM: number } | null = null;
  /** The partial kernels with SEG_DEVICE_TAIL, for the paths the eager ones take (prepareGraph). */
  private graphKernels: { registers: PartialKernel | null; ring: PartialKernel | null } | null = null;

  /**
   * perQueryHead: one selection per query head (unit = query head) instead of one per KV head.
   * tiling: defaultSegmentTiling unless given (the benchmark compares tilings).
   */
  constructor(private readonly rt: CudaRuntime, readonly shape: SegmentDecodeShape, readonly perQueryHead = false, tiling?: SegmentDecodeTiling) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (!(SUPPORTED_SEGMENT_HEAD_DIMS as readonly number[]).includes(D)) throw new Error(`segment decode: head dim ${D} unsupported (64 or 128)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`segment decode: ${H} query heads are not a multiple of ${Hkv} KV heads`);
    const g = H / Hkv;
    if (!perQueryHead && g > MAX_SEGMENT_GROUP) throw new Error(`segment decode: GQA group ${g} > ${MAX_SEGMENT_GROUP} unsupported`);
    this.group = perQueryHead ? 1 : g;
    this.kvDiv = perQueryHead ? g : 1;
    this.units = perQueryHead ? H : Hkv;
    this.tiling = tiling ?? defaultSegmentTiling(D, this.group);
    const slots = this.tiling.threads / (D / 8);
    const stages = this.tiling.stages ?? 0;
    if (!Number.isInteger(stages) || (stages !== 0 && (stages < 2 || stages > 8))) throw new Error(`segment decode: stages must be 0 or 2..8 (got ${stages})`);
    const minSteps = this.tiling.ringMinSteps ?? 0;
    if (!Number.isInteger(minSteps) || minSteps < 0) throw new Error(`segment decode: ringMinSteps must be a non-negative integer (got ${minSteps})`);
    // The register path keeps the slot buffers in static shared memory.
    if (this.usesRegisters && slots * this.group * D * 4 > SLOT_SHARED_LIMIT) {
      throw new Error(`segment decode: ${this.tiling.threads} threads need too much shared memory for a group of ${this.group}`);
    }
  }

  /** Whether some chunks take the register path (no ring, or a ring only from ringMinSteps steps). */
  private get usesRegisters(): boolean {
    return !this.tiling.stages || (this.tiling.ringMinSteps ?? 0) > 0;
  }

  prepare() {
    if (!this.kernels) {
      const { headDim: D } = this.shape;
      const params = PARTIAL_PARAMS;
      const base = this.codegenBase();
      let combine: CudaKernel | null = null;
      let registers: PartialKernel | null = null, ring: PartialKernel | null = null;
      if (this.usesRegisters) {
        const mod = this.rt.module('segment-decode.cu', base);
        const kernel = mod.kernel('segment_decode_partial', [...params]);
        registers = { kernel, blocksPerSM: kernel.maxActiveBlocksPerSM(this.tiling.threads), sharedBytes: 0 };
        combine = mod.kernel('segment_decode_combine', ['ptr', 'ptr', 'ptr', 'i32', 'i32']);
      }
      if (this.tiling.stages) {
        const mod = this.rt.module('segment-decode.cu', { ...base, SEG_STAGES: this.tiling.stages });
        const kernel = mod.kernel('segment_decode_partial', [...params]);
        const sharedBytes = segmentRingSharedBytes(D, this.group, this.tiling);
        // The ring's barriers and staged segment starts are static shared memory beside it: the dynamic
        // limit must leave them room (the default allows 48 KB of static and dynamic together).
        kernel.ensureSharedBytes(sharedBytes + RING_STATIC_BYTES);
        ring = { kernel, blocksPerSM: kernel.maxActiveBlocksPerSM(this.tiling.threads, sharedBytes), sharedBytes };
        combine ??= mod.kernel('segment_decode_combine', ['ptr', 'ptr', 'ptr', 'i32', 'i32']);
      }
      // The plan is the register path's where there is one; a ring holding fewer blocks per SM than it
      // would turn that one wave into two, so it is then not used.
      const blocksPerSM = registers ? registers.blocksPerSM : ring!.blocksPerSM;
      if (ring && registers && ring.blocksPerSM < registers.blocksPerSM) ring = null;
      this.kernels = { registers, ring, combine: combine!, blocksPerSM };
    }
    return this.kernels;
  }

  private codegenBase(): Record<string, number> {
    return { HEAD_DIM: this.shape.headDim, GROUP: this.group, SEG_THREADS: this.tiling.threads, SEG_UNROLL: this.tiling.unroll };
  }

  /**
   * Compiles the device-tail partial kernels (SEG_DEVICE_TAIL) of the paths run() uses, with the same
   * dynamic shared memory; call it before a capture (module loads do not belong inside one).
   */
  prepareGraph(): { registers: PartialKernel | null; ring: PartialKernel | null } {
    const eager = this.prepare();
    if (!this.graphKernels) {
      const base = { ...this.codegenBase(), SEG_DEVICE_TAIL: 1 };
      const compile = (defines: Record<string, number>, sharedBytes: number): PartialKernel => {
        const kernel = this.rt.module('segment-decode.cu', defines).kernel('segment_decode_partial', [...PARTIAL_PARAMS, ...DEVICE_TAIL_PARAMS]);
        if (sharedBytes > 0) kernel.ensureSharedBytes(sharedBytes + RING_STATIC_BYTES);
        return { kernel, blocksPerSM: kernel.maxActiveBlocksPerSM(this.tiling.threads, sharedBytes), sharedBytes };
      };
      this.graphKernels = {
        registers: eager.registers ? compile(base, 0) : null,
        ring: eager.ring ? compile({ ...base, SEG_STAGES: this.tiling.stages! }, eager.ring.sharedBytes) : null,
      };
    }
    return this.graphKernels;
  }

  /**
   * The launch a captured graph fixes for steps whose longest unit reads minRows..maxRows rows: the
   * most splits run() would launch for any of them (each step's chunk is then run()'s, read on the
   * device), and run()'s partial path at maxRows. Compiles the graph kernels.
   */
  planGraph(minRows: number, maxRows: number): SegmentGraphLaunch {
    if (!Number.isInteger(minRows) || !Number.isInteger(maxRows) || minRows < 1 || maxRows < minRows) {
      throw new Error(`segment decode graph plan: need integers 1 <= minRows <= maxRows (got ${minRows}, ${maxRows})`);
    }
    const { blocksPerSM, ring } = this.prepare();
    const targetSplits = segmentTargetSplits(this.units, this.rt.cuda.info.multiprocessors, blocksPerSM);
    // Splits are not monotonic in the rows (a chunk grows by whole loop steps), so every count is tried.
    let splits = 1;
    for (let rows = minRows; rows <= maxRows && splits < targetSplits; rows++) splits = Math.max(splits, this.plan(rows).splits);
    this.prepareGraph();
    return { splits, targetSplits, ring: ring !== null && this.partialFor(this.plan(maxRows).chunk) === ring };
  }

  /** Queues a device-tail decode step (see SegmentDecodeGraphArgs); capturable. */
  runGraph(a: SegmentDecodeGraphArgs): void {
    const { numHeads: H, headDim: D } = this.shape;
    if (a.segments.units !== this.units) throw new Error(`segment decode: ${a.segments.units} segment lists for ${this.units} units`);
    for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v], ['workspace', a.workspace]] as const) {
      if (ptr === 0n || ptr % 16n !== 0n) throw new Error(`segment decode: ${name} must be a 16-byte aligned device pointer`);
    }
    if (a.position === 0n || a.position % 4n !== 0n) throw new Error('segment decode: position must be an aligned int32 device pointer');
    if (!Number.isInteger(a.tailStart) || a.tailStart < 0 || a.tailStart >= a.kvStride) {
      throw new Error(`segment decode: tail start ${a.tailStart} is outside the cache's ${a.kvStride} rows`);
    }
    if (!Number.isInteger(a.maxListRows) || a.maxListRows < 0) throw new Error(`segment decode: maxListRows must be a non-negative integer (got ${a.maxListRows})`);
    const { splits, targetSplits } = a.launch;
    if (!Number.isInteger(splits) || splits < 1 || !Number.isInteger(targetSplits) || targetSplits < 1) {
      throw new Error(`segment decode: graph launch needs positive integer splits (got ${splits}, target ${targetSplits})`);
    }
    const kernels = this.prepareGraph();
    const partial = a.launch.ring ? kernels.ring : kernels.registers;
    if (!partial) throw new Error(`segment decode: this tiling has no ${a.launch.ring ? 'ring' : 'register'} path`);
    const { combine } = this.prepare();
    const partO = a.workspace, partML = a.workspace + BigInt(splits * H * D * 4);
    const stream = this.rt.stream;
    partial.kernel.launch(
      { grid: [splits, this.units, 1], block: [this.tiling.threads, 1, 1], sharedBytes: partial.sharedBytes, stream },
      [a.q, a.k, a.v, partO, partML, a.segments.ptr, a.segments.stride, H, this.kvDiv, a.kvStride, a.tailStart, 0, 0, a.scale * LOG2E,
        a.position, a.tailStarts ?? 0n, a.maxListRows, targetSplits],
    );
    combine.launch({ grid: [H, 1, 1], block: [COMBINE_THREADS, 1, 1], sharedBytes: 0, stream }, [partO, partML, a.out, H, splits]);
  }

  plan(maxRows: number): SegmentDecodePlan {
    return planSegmentDecode(this.shape.headDim, this.units, maxRows, this.rt.cuda.info.multiprocessors, this.prepare().blocksPerSM, this.tiling);
  }

  /** The partial kernel that serves chunks of `chunk` rows. */
  private partialFor(chunk: number): PartialKernel {
    const { registers, ring } = this.prepare();
    const ringFrom = (this.tiling.ringMinSteps ?? 0) * segmentRowsPerStep(this.shape.headDim, this.tiling);
    return ring && (!registers || chunk >= ringFrom) ? ring : registers!;
  }

  run(a: SegmentDecodeArgs): SegmentDecodePlan {
    const { numHeads: H } = this.shape;
    if (a.segments.units !== this.units) throw new Error(`segment decode: ${a.segments.units} segment lists for ${this.units} units`);
    if (!Number.isInteger(a.tailRows) || a.tailRows < 0 || a.tailStart < 0 || a.tailStart + a.tailRows > a.kvStride) {
      throw new Error(`segment decode: tail [${a.tailStart}, ${a.tailStart + a.tailRows}) is outside the cache's ${a.kvStride} rows`);
    }
    for (const [name, ptr] of [['q', a.q], ['k', a.k], ['v', a.v]] as const) {
      if (ptr % 16n !== 0n) throw new Error(`segment decode: ${name} must be 16-byte aligned`);
    }
    const { combine } = this.prepare();
    const plan = this.plan(a.maxRows);
    const partial = this.partialFor(plan.chunk);
    const D = this.shape.headDim;
    const partO = this.rt.pool.acquire(plan.splits * H * D * 4);
    const partML = this.rt.pool.acquire(plan.splits * H * 2 * 4);
    const stream = this.rt.stream;
    partial.kernel.launch(
      { grid: [plan.splits, this.units, 1], block: [this.tiling.threads, 1, 1], sharedBytes: partial.sharedBytes, stream },
      [a.q, a.k, a.v, partO.ptr, partML.ptr, a.segments.ptr, a.segments.stride, H, this.kvDiv, a.kvStride, a.tailStart, a.tailRows,
        plan.chunk, a.scale * LOG2E],
    );
    combine.launch(
      { grid: [H, 1, 1], block: [COMBINE_THREADS, 1, 1], sharedBytes: 0, stream },
      [partO.ptr, partML.ptr, a.out, H, plan.splits],
    );
    // Stream order makes reuse safe: later work on this stream runs after the combine read them.
    this.rt.pool.release(partO);
    this.rt.pool.release(partML);
    return plan;
  }

  /** Whether a read of `maxRows` rows per unit goes through the bulk-copy ring (for reports). */
  usesRing(maxRows: number): boolean {
    return this.partialFor(this.plan(maxRows).chunk) === this.prepare().ring;
  }
}

/** Why a model's attention shape cannot run on this kernel (null: it can). */
export function segmentDecodeUnsupported(
  c: { numHeads: number; numKvHeads: number; headDim: number; attnLogitSoftcap: number | null }, perQueryHead = false,
): string | null {
  if (!(SUPPORTED_SEGMENT_HEAD_DIMS as readonly number[]).includes(c.headDim)) return `head dim ${c.headDim} (segment decode supports 64 and 128)`;
  if (c.numHeads % c.numKvHeads !== 0) return `${c.numHeads} query heads are not a multiple of ${c.numKvHeads} KV heads`;
  if (!perQueryHead && c.numHeads / c.numKvHeads > MAX_SEGMENT_GROUP) return `GQA group ${c.numHeads / c.numKvHeads} > ${MAX_SEGMENT_GROUP}`;
  if (c.attnLogitSoftcap !== null) return 'attention logit soft-capping is not implemented in segment decode';
  return null;
}
