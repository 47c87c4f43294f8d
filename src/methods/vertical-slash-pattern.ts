/**
 * The vertical + slash pattern shared by Vertical-Slash (MInference) and the paper's FlexPrefill:
 * the estimate (last queries against all keys), the choice of columns and diagonals, the conversion
 * of that choice into what the original kernel executes, and the CPU execution of it.
 *
 * Execution follows the original's index conversion, per 64-row query block m (rows 64m .. 64m+63,
 * end = 64(m+1)): every kept diagonal offset o < end becomes the 64-wide key range [e - 64, e) with
 * e = max(end - o, 64); visiting offsets from the largest down, a range whose start touches or
 * overlaps the current range extends the current range by 64 keys (so the attended set is a superset
 * of the chosen diagonals), otherwise the current range is closed. Kept columns outside every range
 * and left of the last one are attended as single columns. The causal mask key <= query holds
 * throughout (columns lie left of the block, ranges are clipped per row).
 */
import { QueryRunScratch, attendQueryRun, forEachCausalSoftmaxRow, withPair } from '../backends/cpu/sparse-attention.js';
import { IndexScratch, rankDescending } from './select.js';

export const PATTERN_BLOCK = 64;

/**
 * Softmax scores of the last A queries of one query head against all keys, causal (query at p sees
 * keys 0..p), reduced to: vertical[j] = sum over queries of the weight on key j, and
 * slash[o] = sum over queries of the weight on key = query - o. Both [n]; slash above the main
 * diagonal would be zero and is not represented.
 * queries: [n, H, D] (whole prompt); keys: [n, D] of the head's KV head; rows: four [n] buffers.
 */
export function lastQueryScores(
  queries: Float32Array, n: number, H: number, D: number, head: number,
  keys: Float32Array, A: number, scale: number, softcap: number | null,
  vertical: Float64Array, slash: Float64Array, rows: Float64Array[],
): void {
  vertical.fill(0, 0, n);
  slash.fill(0, 0, n);
  forEachCausalSoftmaxRow(queries, n - A, n - A, A, H, head, D, keys, scale, softcap, rows, (row, p) => {
    for (let j = 0; j <= p; j++) {
      const w = row[j];
      vertical[j] += w;
      slash[p - j] += w;
    }
  });
}

/**
 * Rank of every item when `forced` items (indices 0 .. forced-1) come first and the rest follow by
 * score descending (ties: lower index). rankOf[i] < k  <=>  item i is among the top k.
 */
export function forcedRanks(scores: Float64Array, n: number, forced: number, idx: IndexScratch, rankOf: Int32Array): void {
  const f = Math.min(forced, n);
  const saved = new Float64Array(f);
  for (let i = 0; i < f; i++) {
    saved[i] = scores[i];
    scores[i] = Infinity;
  }
  const order = rankDescending(scores, n, idx);
  for (let r = 0; r < n; r++) rankOf[order[r]] = r;
  for (let i = 0; i < f; i++) scores[i] = saved[i];
}

/** Pairs (r, k) with r in [r0, r1), k in [a, b), k <= r. */
export function causalRectPairs(r0: number, r1: number, a: number, b: number): number {
  let pairs = 0;
  // Rows a <= r < b see keys a..r: r + 1 - a of them.
  const lo = Math.max(r0, a), hi = Math.min(r1, b);
  if (hi > lo) pairs += ((hi - lo) * (lo + hi - 1)) / 2 + (hi - lo) * (1 - a);
  // Rows r >= b see the whole range.
  const lo2 = Math.max(r0, b);
  if (r1 > lo2) pairs += (r1 - lo2) * (b - a);
  return pairs;
}

/**
 * Compact executed layout of one head: per 64-row block m, ranges[rangeStart[m] .. rangeStart[m+1])
 * (flat start/end pairs) and columns[columnStart[m] .. columnStart[m+1]).
 */
export interface VerticalSlashLayout {
  n: number;
  numBlocks: number;
  rangeStart: Int32Array; // [numBlocks + 1], counts ranges
  ranges: Int32Array; // [2 * total ranges]
  columnStart: Int32Array; // [numBlocks + 1]
  columns: Int32Array;
  /** Exact attended (query, key) pairs. */
  pairs: number;
  /** The original's own statistic: whole 64x64 blocks plus 64-row column strips. */
  originalCells: number;
}

/** Builds layouts (or only counts their pairs) from a selection; buffers are reused across calls. */
export class VerticalSlashBuilder {
  private cols = new Int32Array(64);
  private offs = new Int32Array(64);
  private rangeBuf = new Int32Array(256);
  private colBuf = new Int32Array(256);
  private blockRanges = new Int32Array(64);
  private numCols = 0;
  private numOffs = 0;

  /** Take the kv top-ranked columns (ascending) and ks top-ranked offsets (descending). */
  select(n: number, rankV: Int32Array, kv: number, rankS: Int32Array, ks: number): void {
    if (this.cols.length < n) {
      this.cols = new Int32Array(n);
      this.offs = new Int32Array(n);
    }
    let c = 0;
    for (let j = 0; j < n; j++) if (rankV[j] < kv) this.cols[c++] = j;
    this.numCols = c;
    let s = 0;
    for (let o = n - 1; o >= 0; o--) if (rankS[o] < ks) this.offs[s++] = o;
    this.numOffs = s;
    if (s === 0 || this.offs[s - 1] !== 0) throw new Error('vertical-slash: the main diagonal (offset 0) must be kept');
  }

  /** Exact pairs of the current selection, without storing the layout. */
  countPairs(n: number): number {
    return this.walk(n, null).pairs;
  }

  build(n: number): VerticalSlashLayout {
    const numBlocks = Math.ceil(n / PATTERN_BLOCK);
    const layout: VerticalSlashLayout = {
      n, numBlocks,
      rangeStart: new Int32Array(numBlocks + 1),
      ranges: this.rangeBuf,
      columnStart: new Int32Array(numBlocks + 1),
      columns: this.colBuf,
      pairs: 0,
      originalCells: 0,
    };
    const done = this.walk(n, layout);
    layout.ranges = this.rangeBuf.slice(0, 2 * layout.rangeStart[numBlocks]);
    layout.columns = this.colBuf.slice(0, layout.columnStart[numBlocks]);
    layout.pairs = done.pairs;
    layout.originalCells = done.originalCells;
    return layout;
  }

  private pushRange(index: number, a: number, b: number): void {
    this.rangeBuf = withPair(this.rangeBuf, index, a, b);
  }

  private pushColumn(index: number, v: number): void {
    if (this.colBuf.length < index + 1) {
      const grown = new Int32Array(this.colBuf.length * 2);
      grown.set(this.colBuf);
      this.colBuf = grown;
    }
    this.colBuf[index] = v;
  }

  private walk(n: number, layout: VerticalSlashLayout | null): { pairs: number; originalCells: number } {
    const B = PATTERN_BLOCK;
    const numBlocks = Math.ceil(n / B);
    const offs = this.offs, cols = this.cols;
    let pairs = 0, originalCells = 0, rangeIndex = 0, colIndex = 0;
    // Ranges of this block, kept so columns can be tested against them (buffer reused across calls).
    let local = this.blockRanges;
    for (let m = 0; m < numBlocks; m++) {
      const start = m * B, end = start + B, rowEnd = Math.min(end, n);
      if (layout) {
        layout.rangeStart[m] = rangeIndex;
        layout.columnStart[m] = colIndex;
      }
      let count = 0;
      let a = -1, b = -1;
      for (let i = 0; i < this.numOffs; i++) {
        const o = offs[i];
        if (o >= end) continue;
        const e = Math.max(end - o, B);
        if (a < 0) {
          a = e - B;
          b = e;
        } else if (e > b + B) {
          local = withPair(local, count++, a, b);
          a = e - B;
          b = e;
        } else if (e > b) {
          b += B;
        }
      }
      local = withPair(local, count++, a, b);
      const lastEnd = b;
      for (let r = 0; r < count; r++) {
        const ra = local[2 * r], rb = local[2 * r + 1];
        pairs += causalRectPairs(start, rowEnd, ra, rb);
        originalCells += (rb - ra) * B;
        if (layout) this.pushRange(rangeIndex, ra, rb);
        rangeIndex++;
      }
      // Columns outside every range and left of the last range end (the rest are dropped, as
      // in the original; they lie right of the diagonal anyway).
      let r = 0, blockCols = 0;
      for (let i = 0; i < this.numCols; i++) {
        const v = cols[i];
        if (v >= lastEnd) break;
        while (r < count && local[2 * r + 1] <= v) r++;
        if (r < count && v >= local[2 * r]) continue;
        if (layout) this.pushColumn(colIndex, v);
        colIndex++;
        blockCols++;
      }
      pairs += blockCols * (rowEnd - start);
      originalCells += blockCols * B;
    }
    if (layout) {
      layout.rangeStart[numBlocks] = rangeIndex;
      layout.columnStart[numBlocks] = colIndex;
    }
    this.blockRanges = local;
    return { pairs, originalCells };
  }
}

/**
 * Run one query head over its layout. queries/out: [n, H, D]; keys/values: the KV head's [n, D].
 * The rows of a 64-row block share their ranges and columns; the kernel applies key <= query per row.
 * Returns the attended pairs (equal to layout.pairs).
 */
export function attendVerticalSlash(
  queries: Float32Array, H: number, D: number, head: number,
  keys: Float32Array, values: Float32Array, layout: VerticalSlashLayout,
  scale: number, softcap: number | null, out: Float32Array, scratch: QueryRunScratch,
): number {
  const B = PATTERN_BLOCK;
  let attended = 0;
  for (let m = 0; m < layout.numBlocks; m++) {
    const start = m * B, rowEnd = Math.min(start + B, layout.n);
    const r0 = layout.rangeStart[m], r1 = layout.rangeStart[m + 1];
    const c0 = layout.columnStart[m], c1 = layout.columnStart[m + 1];
    attended += attendQueryRun(
      queries, out, H, head, D, start, rowEnd, 0, null, keys, values,
      layout.ranges.subarray(2 * r0, 2 * r1), r1 - r0, layout.columns.subarray(c0, c1), c1 - c0, scale, softcap, scratch,
    );
  }
  return attended;
}

/** FLOPs of the last-query estimate: 2D per score, ~5 per score for softmax, 2 for the two sums. */
export function lastQueryEstimateFlops(numHeads: number, headDim: number, n: number, A: number): number {
  const a = Math.min(A, n);
  const scoresPerHead = a * n - (a * (a - 1)) / 2;
  return numHeads * scoresPerHead * (2 * headDim + 7);
}
