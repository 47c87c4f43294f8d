/**
 * The last W rotated queries of one layer's prompt, kept on the device across prefill chunks for a
 * decode method's afterPrefill hook (SnapKV's observation window): the GPU counterpart of the CPU
 * engine's QueryWindow (src/engine/forward-state.ts).
 *
 * Queries arrive inside the model's fused qkv rows, which are scratch of one forward call, so each
 * chunk's trailing rows are copied out: into a ring of W rows (position p at slot p mod W), so a
 * chunk shorter than W costs only its own rows. contiguous() then lays the window out as the
 * contract's [W, H, D] in position order (at most two device-to-device copies).
 */
import type { DevicePtr } from '../context.js';
import type { DeviceBuffer } from '../memory-pool.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';

/** Where the plan keeps one layer's trailing prompt queries (DeviceQueryWindow on the GPU). */
export interface QueryWindowStore {
  readonly capacity: number;
  /** Tokens held (≤ capacity). */
  readonly length: number;
  push(q: DevicePtr, qRowStride: number, numQueries: number, queryStart: number): void;
  /** [length, H, D] bf16 window in position order. */
  contiguous(): DevicePtr;
  clear(): void;
  release(): void;
}

/** One run of rows copied between a chunk (or the ring) and the ring (or the ordered window). */
export interface RowRun {
  /** First source row: a chunk row for ringWrites, a ring slot for orderedReads. */
  from: number;
  /** First destination row: a ring slot for ringWrites, a window row for orderedReads. */
  to: number;
  rows: number;
}

/**
 * The copies that keep the trailing min(T, W) rows of a chunk of T queries starting at position
 * `queryStart` in a ring of W slots (position p at slot p mod W): at most two runs.
 */
export function ringWrites(queryStart: number, numQueries: number, capacity: number): RowRun[] {
  const keep = Math.min(numQueries, capacity);
  const first = numQueries - keep;
  const slot = (queryStart + first) % capacity;
  const before = Math.min(keep, capacity - slot); // rows up to the ring's end, then the rest from slot 0
  const runs: RowRun[] = [{ from: first, to: slot, rows: before }];
  if (keep > before) runs.push({ from: first + before, to: 0, rows: keep - before });
  return runs;
}

/** The copies that lay positions end − held .. end − 1 out of the ring in position order. */
export function orderedReads(end: number, held: number, capacity: number): RowRun[] {
  const oldest = (end - held) % capacity;
  const firstRun = Math.min(held, capacity - oldest);
  const runs: RowRun[] = [{ from: oldest, to: 0, rows: firstRun }];
  if (held > firstRun) runs.push({ from: 0, to: firstRun, rows: held - firstRun });
  return runs;
}

export class DeviceQueryWindow implements QueryWindowStore {
  /** [capacity, H·D] bf16 ring: the query of position p at row p mod capacity. */
  private ring: DeviceBuffer | null = null;
  /** [≤capacity, H·D] bf16, the window in position order (valid after contiguous()). */
  private ordered: DeviceBuffer | null = null;
  /** Positions [end − held, end) are in the ring. */
  private end = 0;
  private held = 0;
  private readonly rowBytes: number;
  private copyRows: CudaKernel | null = null;

  /** `rowElements`: H·D, one token's queries of every head. */
  constructor(private readonly rt: CudaRuntime, readonly capacity: number, private readonly rowElements: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`query window: capacity must be a positive integer (got ${capacity})`);
    if (rowElements % 8 !== 0) throw new Error(`query window: H·D = ${rowElements} must be a multiple of 8 (16-byte rows)`);
    this.rowBytes = rowElements * 2;
  }

  get length(): number {
    return this.held;
  }

  /**
   * Keeps the trailing rows of a chunk of T queries at positions queryStart .. queryStart + T − 1
   * (query t at q + 2·t·qRowStride elements); chunks must follow each other without gaps.
   */
  push(q: DevicePtr, qRowStride: number, numQueries: number, queryStart: number): void {
    if (queryStart !== this.end) throw new Error(`query window: chunk starts at ${queryStart}, expected ${this.end} (chunks must be contiguous)`);
    if (!(numQueries > 0)) throw new Error(`query window: numQueries must be positive (got ${numQueries})`);
    if (qRowStride < this.rowElements || qRowStride % 8 !== 0) throw new Error(`query window: bad query row stride ${qRowStride}`);
    this.ring ??= this.rt.pool.acquire(this.capacity * this.rowBytes);
    for (const run of ringWrites(queryStart, numQueries, this.capacity)) this.copy(q + BigInt(run.from * qRowStride * 2), qRowStride, run.rows, run.to);
    this.end = queryStart + numQueries;
    this.held = Math.min(this.capacity, this.held + numQueries);
  }

  /** [length, H, D] bf16 window in position order (positions end − length .. end − 1); valid until clear(). */
  contiguous(): DevicePtr {
    if (!this.ring || this.held === 0) throw new Error('query window: no queries held');
    this.ordered ??= this.rt.pool.acquire(this.capacity * this.rowBytes);
    const b = this.rowBytes;
    for (const run of orderedReads(this.end, this.held, this.capacity)) {
      this.rt.cuda.copyDeviceAsync(this.ordered.ptr + BigInt(run.to * b), this.ring.ptr + BigInt(run.from * b), run.rows * b, this.rt.stream);
    }
    return this.ordered.ptr;
  }

  /** Forgets the held queries (a new sequence); the buffers stay for reuse. */
  clear(): void {
    this.end = 0;
    this.held = 0;
  }

  release(): void {
    for (const b of [this.ring, this.ordered]) if (b) this.rt.pool.release(b);
    this.ring = this.ordered = null;
    this.clear();
  }

  /**
   * rows × H·D elements from strided query rows into ring rows slot .. slot + rows − 1. kv_append's
   * copy is exactly this with one "head" of width H·D and the ring as its [1, capacity, H·D] cache; it
   * copies a key and a value source, both given the same rows and destination (identical bytes).
   */
  private copy(src: DevicePtr, srcRowStride: number, rows: number, slot: number): void {
    const ring = this.ring as DeviceBuffer;
    this.copyRows ??= this.rt.module('kv-append.cu', {}).kernel('kv_append', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
    const chunks = rows * (this.rowElements / 8);
    this.copyRows.launch(
      { grid: [Math.ceil(chunks / 256), 1, 1], block: [256, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [src, src, ring.ptr, ring.ptr, rows, 1, this.rowElements, srcRowStride, this.capacity, slot],
    );
  }
}
