/**
 * Launcher for vertical-slash-index.cu: from the estimate's scores and per-head counts to the index the
 * Vertical-Slash prefill kernel executes, all on the device. Per query head: the kept columns and
 * diagonal offsets (top counts, sink columns 0..3 and diagonals 0..63 forced first, ties to the lower
 * index: src/methods/vertical-slash-pattern.ts forcedRanks), then per 64-row query block the merged
 * 64-wide key ranges of the diagonals and the kept columns outside them (VerticalSlashBuilder), with
 * every head's exact attended pairs.
 *
 * One small host round trip per build: the per-head pair counts and the length of the column list
 * come back together (the contract returns the counts anyway; the length sizes the list).
 *
 * The hand-off (build's `ranked`, session 6, opt-in): when the count search has ranked these scores
 * already, the selection is one compaction launch over its ranks (vs_select_ranked, every row of the
 * layer at once) instead of a radix select per head and kind, the counts reach the device by memsets
 * or a device copy instead of a synchronous upload, and the host waits before it only when a buffer
 * must grow. Same ranks, so the same selection (vs_rank_rows ranks as vs_select does).
 */
import { FORCED_COLUMNS, FORCED_DIAGONALS } from '../../../methods/vertical-slash-prefill.js';
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import { GrowableDeviceBuffer, verticalSlashRangeOffset, verticalSlashRangeSlots } from '../vertical-slash-layout.js';
import type { VerticalSlashScores } from './vertical-slash-estimate.js';
import { VS_SEARCH_ENTRY_PARAMS, vsSearchGroupDefines } from './vertical-slash-search-groups.js';

export const PATTERN_BLOCK = 64;
const SELECT_THREADS = 1024;
/** vs_select_ranked's block (vertical-slash-search.cu THREADS). */
const RANKED_SELECT_THREADS = 512;
/** The kernels index the column list with 32-bit integers. */
const MAX_LISTED_COLUMNS = 2 ** 31 - 1;

/** Kept columns and diagonals per query head, [H] each (clamped to n by the kernels). */
export interface VerticalSlashCounts {
  vertical: Int32Array;
  slash: Int32Array;
}

/** Rankings of the scores being indexed, from the count search (VerticalSlashCountSearch.ranksOf). */
export interface RankedRows {
  /** [2H, n] int32: rank of each column (rows < H) or offset (rows >= H), vs_rank_rows' order. */
  ranks: DevicePtr;
  /**
   * [2H] int32 on the device holding the same counts as the host arrays passed beside it (e.g.
   * FlexPrefillCoverage.countsPtr after its last sizes()); absent: memsets when every head has the
   * same counts, else a synchronous upload.
   */
  counts?: DevicePtr;
  /**
   * With `counts`: the kept columns / offsets of these counts already selected on the device (the count
   * search's selectionHandOff, VerticalSlashCountSearch.selectionOf): head h's at columns / offsets +
   * h·stride, ascending. The builder reads them and `counts` in place: no count copy, no selection launch.
   */
  selection?: { columns: DevicePtr; offsets: DevicePtr; stride: number };
}

/**
 * What the attention kernel (vertical-slash-prefill.cu) reads: per (query head, 64-row query block m)
 * key ranges (int2, absolute positions) at slot h·rangeSlotsPerHead + verticalSlashRangeOffset(m,
 * rangeCap), their number in rangeCount [H, numBlocks], and listed columns
 * colList[colStart[h·numBlocks + m] .. colStart[h·numBlocks + m + 1]).
 */
export interface VerticalSlashKernelIndex {
  numHeads: number;
  numBlocks: number;
  /** C: the most ranges one block can hold (for Vertical-Slash the largest slash count). */
  rangeCap: number;
  rangeSlotsPerHead: number;
  ranges: DevicePtr; // int2 slots
  rangeCount: DevicePtr; // [H, numBlocks] int32
  colStart: DevicePtr; // [H·numBlocks + 1] int32
  colList: DevicePtr; // [totalColumns] int32
}

/** A built Vertical-Slash index on the device; valid until the builder's next build or countPairs. */
export interface DeviceVerticalSlashIndex extends VerticalSlashKernelIndex {
  n: number;
  totalColumns: number;
  /** [H] exact attended (query, key) pairs. */
  pairs: Float64Array;
  /** The selection: [H, columnStride] ascending columns, [H, offsetStride] ascending offsets. */
  selectedColumns: DevicePtr;
  columnStride: number;
  selectedOffsets: DevicePtr;
  offsetStride: number;
  counts: VerticalSlashCounts;
}

/** Options of VerticalSlashIndexBuilder. */
export interface IndexBuilderOptions {
  /**
   * Walk each (head, 64-row block)'s ranges over the head's kept columns and offsets staged in shared
   * memory (vs_layout_ranges_staged, session 7; not the default until measured): the walks are chains of
   * dependent loads. The same index.
   */
  stagedRanges?: boolean;
}

export class VerticalSlashIndexBuilder {
  private kernels: { select: CudaKernel; ranges: CudaKernel; pairs: CudaKernel; scan: CudaKernel; columns: CudaKernel } | null = null;
  private rankedSelect: CudaKernel | null = null;
  private readonly buf: Record<'counts' | 'selV' | 'selS' | 'ranges' | 'rangeCount' | 'colCount' | 'colStart' | 'colList' | 'summary', GrowableDeviceBuffer>;

  readonly stagedRanges: boolean;

  constructor(private readonly rt: CudaRuntime, readonly numHeads: number, options: IndexBuilderOptions = {}) {
    if (!(numHeads > 0)) throw new Error(`vertical-slash index: numHeads must be positive (got ${numHeads})`);
    this.stagedRanges = options.stagedRanges ?? false;
    const names = ['counts', 'selV', 'selS', 'ranges', 'rangeCount', 'colCount', 'colStart', 'colList', 'summary'] as const;
    this.buf = Object.fromEntries(names.map((k) => [k, new GrowableDeviceBuffer(rt, `vertical-slash index ${k}`)])) as VerticalSlashIndexBuilder['buf'];
  }

  prepare() {
    if (!this.kernels) {
      const mod = this.rt.module('vertical-slash-index.cu', {});
      this.kernels = {
        select: mod.kernel('vs_select', ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32']),
        ranges: mod.kernel(this.stagedRanges ? 'vs_layout_ranges_staged' : 'vs_layout_ranges',
          ['ptr', 'ptr', 'i32', 'ptr', 'ptr', 'i32', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32']),
        pairs: mod.kernel('vs_count_pairs', ['ptr', 'ptr', 'i32', 'ptr', 'ptr', 'i32', 'ptr', 'i32', 'i32']),
        scan: mod.kernel('vs_scan', ['ptr', 'ptr', 'ptr', 'i32']),
        columns: mod.kernel('vs_layout_columns', ['ptr', 'ptr', 'i32', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32']),
      };
    }
    return this.kernels;
  }

  /**
   * Checks and clamps the counts, puts them on the device and enqueues both selections: by default an
   * upload and a radix select per kind; from `ranked`, one compaction (the hand-off). `later(numBlocks,
   * C)`: the buffers the caller will size before its next wait, with their bytes (the hand-off waits
   * for the stream only when one of them or the selection's must grow).
   */
  private select(scores: VerticalSlashScores, counts: VerticalSlashCounts, ranked?: RankedRows,
    later: (numBlocks: number, C: number) => [GrowableDeviceBuffer, number][] = () => []) {
    const H = this.numHeads, n = scores.n;
    const clamp = (a: Int32Array, what: string, least: number): Int32Array => {
      if (a.length !== H) throw new Error(`vertical-slash index: ${what} counts must have ${H} entries (got ${a.length})`);
      return a.map((c) => {
        if (!Number.isInteger(c) || c < least) throw new Error(`vertical-slash index: ${what} count ${c} must be an integer >= ${least}`);
        return Math.min(c, n);
      });
    };
    // The main diagonal must be kept (the CPU builder refuses otherwise): at least one slash.
    const kv = clamp(counts.vertical, 'vertical', 0), ks = clamp(counts.slash, 'slash', 1);
    const k = this.prepare();
    // C: the most ranges a block can hold (the largest slash count).
    const C = Math.max(1, ...ks);
    const numBlocks = Math.ceil(n / PATTERN_BLOCK);
    const handed = ranked?.counts !== undefined ? ranked.selection : undefined;
    if (handed) {
      if (!(Number.isInteger(handed.stride) && handed.stride >= Math.max(1, ...kv, ...ks))) {
        throw new Error(`vertical-slash index: a handed-off selection's stride ${handed.stride} is below its counts`);
      }
      // Counts and selection are read in place; only the range buffers may need the wait.
      if (later(numBlocks, C).some(([b, bytes]) => !b.fits(bytes))) this.rt.synchronize();
      const countsPtr = ranked?.counts as DevicePtr;
      return {
        n, numBlocks, C, strideV: handed.stride, strideS: handed.stride, kv, ks, selV: { ptr: handed.columns }, selS: { ptr: handed.offsets },
        countsBuf: { ptr: countsPtr }, ksPtr: countsPtr + BigInt(4 * H),
      };
    }
    const strideV = Math.max(1, ...kv), strideS = C;
    const uniform = kv.every((c) => c === kv[0]) && ks.every((c) => c === ks[0]);
    const upload = !ranked || (ranked.counts === undefined && !uniform);
    const sized: [GrowableDeviceBuffer, number][] = [[this.buf.counts, 2 * H * 4], [this.buf.selV, H * strideV * 4], [this.buf.selS, H * strideS * 4], ...later(numBlocks, C)];
    // Earlier work on the stream may still read these buffers (uploads do not wait for the stream,
    // growing frees them).
    if (upload || sized.some(([b, bytes]) => !b.fits(bytes))) this.rt.synchronize();
    const stream = this.rt.stream;
    const countsBuf = this.buf.counts.ensure(2 * H * 4);
    const ksPtr = countsBuf.ptr + BigInt(4 * H);
    if (upload) {
      const both = new Int32Array(2 * H);
      both.set(kv, 0);
      both.set(ks, H);
      this.rt.cuda.upload(countsBuf.ptr, both);
    } else if (ranked?.counts !== undefined) {
      this.rt.cuda.copyDeviceAsync(countsBuf.ptr, ranked.counts, 2 * H * 4, stream);
    } else {
      this.rt.cuda.fill32Async(countsBuf.ptr, kv[0], H, stream);
      this.rt.cuda.fill32Async(ksPtr, ks[0], H, stream);
    }
    const selV = this.buf.selV.ensure(H * strideV * 4), selS = this.buf.selS.ensure(H * strideS * 4);
    if (ranked) {
      this.rankedSelect ??= this.rt.module('vertical-slash-search.cu', vsSearchGroupDefines('rank'))
        .kernel('vs_select_ranked', [...VS_SEARCH_ENTRY_PARAMS.vs_select_ranked]);
      this.rankedSelect.launch({ grid: [2 * H, 1, 1], block: [RANKED_SELECT_THREADS, 1, 1], sharedBytes: 0, stream },
        [ranked.ranks, countsBuf.ptr, selV.ptr, strideV, selS.ptr, strideS, n, H]);
    } else {
      const selectConfig = { grid: [H, 1, 1] as [number, number, number], block: [SELECT_THREADS, 1, 1] as [number, number, number], sharedBytes: 0, stream };
      k.select.launch(selectConfig, [scores.vertical, countsBuf.ptr, selV.ptr, n, FORCED_COLUMNS, strideV]);
      k.select.launch(selectConfig, [scores.slash, ksPtr, selS.ptr, n, FORCED_DIAGONALS, strideS]);
    }
    return { n, numBlocks, C, strideV, strideS, kv, ks, selV, selS, countsBuf, ksPtr };
  }

  /** Selection and ranges (everything but the column list); returns the per-head pairs and list length. */
  private selectAndRange(scores: VerticalSlashScores, counts: VerticalSlashCounts, ranked?: RankedRows) {
    const r = this.enqueueRanges(scores, counts, ranked);
    return { ...r, ...this.readSummary(r.summary.ptr) };
  }

  /** Waits for the stream and reads the ranges' summary: per-head pairs and the column list's length. */
  private readSummary(summary: DevicePtr): { pairs: Float64Array; totalColumns: number } {
    const H = this.numHeads;
    this.rt.synchronize();
    const words = new BigUint64Array(H + 2);
    this.rt.cuda.download(words, summary);
    if (words[H + 1] !== 0n) throw new Error('vertical-slash index: a query block overflowed its range slots (internal error)');
    const pairs = new Float64Array(H);
    for (let h = 0; h < H; h++) pairs[h] = Number(words[h]);
    return { pairs, totalColumns: Number(words[H]) };
  }

  /** Enqueues the selection, the ranges and the column scan (no wait). */
  private enqueueRanges(scores: VerticalSlashScores, counts: VerticalSlashCounts, ranked?: RankedRows) {
    const H = this.numHeads;
    // The range buffers' sizes follow from the clamped counts (C = the largest slash count).
    const sizes = (numBlocks: number, C: number): Record<'ranges' | 'rangeCount' | 'colCount' | 'colStart' | 'summary', number> => ({
      ranges: H * verticalSlashRangeSlots(numBlocks, C) * 8, rangeCount: H * numBlocks * 4, colCount: H * numBlocks * 4,
      colStart: (H * numBlocks + 1) * 4, summary: (H + 2) * 8, // [H] pairs (u64), the column-list length (u64), an overflow flag
    });
    const later = (numBlocks: number, C: number): [GrowableDeviceBuffer, number][] =>
      Object.entries(sizes(numBlocks, C)).map(([name, bytes]) => [this.buf[name as keyof ReturnType<typeof sizes>], bytes]);
    const sel = this.select(scores, counts, ranked, later);
    const { n, numBlocks, C, strideV, strideS, selV, selS, countsBuf, ksPtr } = sel;
    const slots = verticalSlashRangeSlots(numBlocks, C);
    if (H * slots > 2 ** 31) throw new Error(`vertical-slash index: ${H * slots} range slots exceed the 32-bit index range`);
    const size = sizes(numBlocks, C);
    const ranges = this.buf.ranges.ensure(size.ranges);
    const rangeCount = this.buf.rangeCount.ensure(size.rangeCount);
    const colCount = this.buf.colCount.ensure(size.colCount);
    const colStart = this.buf.colStart.ensure(size.colStart);
    const summary = this.buf.summary.ensure(size.summary);
    const stream = this.rt.stream;
    const k = this.prepare();
    this.rt.cuda.fill32Async(summary.ptr, 0, 2 * (H + 2), stream);
    k.ranges.launch(
      { grid: [Math.ceil(numBlocks / 128), H, 1], block: [128, 1, 1], sharedBytes: 0, stream },
      [selV.ptr, countsBuf.ptr, strideV, selS.ptr, ksPtr, strideS, ranges.ptr, rangeCount.ptr, colCount.ptr, summary.ptr,
        summary.ptr + BigInt(8 * (H + 1)), n, numBlocks, C, slots],
    );
    k.scan.launch(
      { grid: [1, 1, 1], block: [SELECT_THREADS, 1, 1], sharedBytes: 0, stream },
      [colCount.ptr, colStart.ptr, summary.ptr + BigInt(8 * H), H * numBlocks],
    );
    return { ...sel, C, slots, ranges, rangeCount, colStart, summary };
  }

  /**
   * Exact attended pairs per head [H] of the given counts (a count search's probe): the selection and
   * vs_count_pairs, which stores no ranges, so a probe at large counts allocates nothing that grows
   * with them. Synchronises.
   */
  countPairs(scores: VerticalSlashScores, counts: VerticalSlashCounts): Float64Array {
    const H = this.numHeads;
    const { n, numBlocks, strideV, strideS, selV, selS, countsBuf, ksPtr } = this.select(scores, counts);
    const summary = this.buf.summary.ensure((H + 2) * 8);
    const stream = this.rt.stream;
    this.rt.cuda.fill32Async(summary.ptr, 0, 2 * H, stream);
    this.prepare().pairs.launch(
      { grid: [Math.ceil(numBlocks / 128), H, 1], block: [128, 1, 1], sharedBytes: 0, stream },
      [selV.ptr, countsBuf.ptr, strideV, selS.ptr, ksPtr, strideS, summary.ptr, n, numBlocks],
    );
    this.rt.synchronize();
    const words = new BigUint64Array(H);
    this.rt.cuda.download(words, summary.ptr);
    return Float64Array.from(words, (w) => Number(w));
  }

  /**
   * The whole index; the column list is enqueued on the stream (the prefill kernel follows it).
   * ranked: the count search's ranks of these scores (the hand-off; the same index).
   */
  build(scores: VerticalSlashScores, counts: VerticalSlashCounts, ranked?: RankedRows): DeviceVerticalSlashIndex {
    const H = this.numHeads;
    const r = this.selectAndRange(scores, counts, ranked);
    if (r.totalColumns > MAX_LISTED_COLUMNS) {
      throw new Error(`vertical-slash index: ${r.totalColumns} listed columns exceed the kernels' 32-bit list`);
    }
    const colList = this.buf.colList.ensure(r.totalColumns * 4);
    this.prepare().columns.launch(
      { grid: [Math.ceil(r.numBlocks / 4), H, 1], block: [128, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [r.selV.ptr, r.countsBuf.ptr, r.strideV, r.ranges.ptr, r.rangeCount.ptr, r.colStart.ptr, colList.ptr, r.n, r.numBlocks, r.C, r.slots],
    );
    return {
      n: r.n, numHeads: H, numBlocks: r.numBlocks, rangeCap: r.C, rangeSlotsPerHead: r.slots,
      ranges: r.ranges.ptr, rangeCount: r.rangeCount.ptr, colStart: r.colStart.ptr, colList: colList.ptr,
      totalColumns: r.totalColumns, pairs: r.pairs,
      selectedColumns: r.selV.ptr, columnStride: r.strideV, selectedOffsets: r.selS.ptr, offsetStride: r.strideS,
      counts: { vertical: r.kv, slash: r.ks },
    };
  }

  /**
   * build() without its host wait in the middle (session 8, opt-in; the method's
   * CountSearchOptions.deferredIndexWait): the column list is sized by its bound (per head, the sum over
   * 64-row blocks of min(kept columns, the block's end)) instead of the scan's total, so the selection,
   * ranges, scan and column list are enqueued back to back, and `settle()` (one wait) reads the pairs
   * and the list's length into the index afterwards, when the caller has enqueued what reads it. Until
   * then index.pairs is zeros and index.totalColumns -1. null when the bound exceeds
   * DEFERRED_LIST_MAX_INTS: build() instead. The same index.
   */
  buildDeferred(scores: VerticalSlashScores, counts: VerticalSlashCounts, ranked?: RankedRows):
    { index: DeviceVerticalSlashIndex; settle: () => void } | null {
    const H = this.numHeads;
    const bound = deferredColumnBound(counts.vertical, scores.n);
    if (bound > DEFERRED_LIST_MAX_INTS) return null;
    const r = this.enqueueRanges(scores, counts, ranked);
    const colList = this.buf.colList.fits(bound * 4) ? this.buf.colList.current : (this.rt.synchronize(), this.buf.colList.ensure(bound * 4));
    this.prepare().columns.launch(
      { grid: [Math.ceil(r.numBlocks / 4), H, 1], block: [128, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [r.selV.ptr, r.countsBuf.ptr, r.strideV, r.ranges.ptr, r.rangeCount.ptr, r.colStart.ptr, colList.ptr, r.n, r.numBlocks, r.C, r.slots],
    );
    const index: DeviceVerticalSlashIndex = {
      n: r.n, numHeads: H, numBlocks: r.numBlocks, rangeCap: r.C, rangeSlotsPerHead: r.slots,
      ranges: r.ranges.ptr, rangeCount: r.rangeCount.ptr, colStart: r.colStart.ptr, colList: colList.ptr,
      totalColumns: -1, pairs: new Float64Array(H),
      selectedColumns: r.selV.ptr, columnStride: r.strideV, selectedOffsets: r.selS.ptr, offsetStride: r.strideS,
      counts: { vertical: r.kv, slash: r.ks },
    };
    const summary = r.summary.ptr;
    const settle = () => {
      const { pairs, totalColumns } = this.readSummary(summary);
      if (totalColumns > bound) throw new Error(`vertical-slash index: ${totalColumns} listed columns past the bound ${bound} (internal error)`);
      index.pairs.set(pairs);
      index.totalColumns = totalColumns;
    };
    return { index, settle };
  }

  release(): void {
    for (const b of Object.values(this.buf)) b.release();
  }
}

/** The most column-list entries buildDeferred sizes by their bound (16 MiB of int32). */
export const DEFERRED_LIST_MAX_INTS = 4 * 2 ** 20;

/**
 * buildDeferred's bound on the column list's length: per head (kept columns kv [H], clamped to [0, n]),
 * the sum over the 64-row blocks m of min(kv, 64(m + 1)): a block lists only kept columns left of its
 * end. Blocks ending at or below kv list at most their end, the rest at most kv.
 */
export function deferredColumnBound(vertical: Int32Array, n: number): number {
  const numBlocks = Math.ceil(n / PATTERN_BLOCK);
  let bound = 0;
  for (const c of vertical) {
    const kv = Math.min(Math.max(c, 0), n);
    const full = Math.min(numBlocks, Math.floor(kv / PATTERN_BLOCK));
    bound += (PATTERN_BLOCK * (full * (full + 1))) / 2 + (numBlocks - full) * kv;
  }
  return bound;
}

/** Per head: the kept columns and offsets (ascending) of a built index. Synchronises. */
export function downloadVerticalSlashSelection(rt: CudaRuntime, index: DeviceVerticalSlashIndex): { columns: Int32Array[]; offsets: Int32Array[] } {
  const H = index.numHeads;
  rt.synchronize();
  const v = new Int32Array(H * index.columnStride), s = new Int32Array(H * index.offsetStride);
  rt.cuda.download(v, index.selectedColumns);
  rt.cuda.download(s, index.selectedOffsets);
  return {
    columns: Array.from({ length: H }, (_, h) => v.slice(h * index.columnStride, h * index.columnStride + index.counts.vertical[h])),
    offsets: Array.from({ length: H }, (_, h) => s.slice(h * index.offsetStride, h * index.offsetStride + index.counts.slash[h])),
  };
}

/** Per head and 64-row block: the key ranges and listed columns of a built index. Synchronises. */
export function downloadVerticalSlashLayout(rt: CudaRuntime, index: DeviceVerticalSlashIndex): { ranges: Int32Array[][]; columns: Int32Array[][] } {
  const { numHeads: H, numBlocks } = index;
  rt.synchronize();
  const rangeCount = new Int32Array(H * numBlocks), colStart = new Int32Array(H * numBlocks + 1);
  rt.cuda.download(rangeCount, index.rangeCount);
  rt.cuda.download(colStart, index.colStart);
  const slots = new Int32Array(Math.max(2, 2 * H * index.rangeSlotsPerHead));
  rt.cuda.download(slots.subarray(0, 2 * H * index.rangeSlotsPerHead), index.ranges);
  const cols = new Int32Array(Math.max(1, index.totalColumns));
  if (index.totalColumns > 0) rt.cuda.download(cols.subarray(0, index.totalColumns), index.colList);
  const ranges: Int32Array[][] = [], columns: Int32Array[][] = [];
  for (let h = 0; h < H; h++) {
    ranges.push([]);
    columns.push([]);
    for (let m = 0; m < numBlocks; m++) {
      const at = 2 * (h * index.rangeSlotsPerHead + verticalSlashRangeOffset(m, index.rangeCap));
      ranges[h].push(slots.slice(at, at + 2 * rangeCount[h * numBlocks + m]));
      columns[h].push(cols.slice(colStart[h * numBlocks + m], colStart[h * numBlocks + m + 1]));
    }
  }
  return { ranges, columns };
}
