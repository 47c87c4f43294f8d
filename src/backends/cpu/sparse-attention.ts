/**
 * CPU kernel for sparse attention: one query against the union of disjoint row ranges and single rows
 * of one KV head. Every sparse method reduces its selection to this compact form (blocks and
 * diagonal strips become ranges, vertical columns and kept tokens become rows), so exactly the
 * selected keys are visited: no mask, no n x n buffer. Scores are accumulated in float64 and the
 * softmax is exact over the visited keys, like the dense kernels in attention-kernels.ts.
 */

/** Reusable buffers: one per method object, grown on demand, never allocated per key or per call. */
export class SparseAttentionScratch {
  private scoreBuf = new Float64Array(1024);
  private accBuf = new Float64Array(128);
  scores(n: number): Float64Array {
    if (this.scoreBuf.length < n) this.scoreBuf = new Float64Array(Math.max(n, this.scoreBuf.length * 2));
    return this.scoreBuf;
  }
  acc(d: number): Float64Array {
    if (this.accBuf.length < d) this.accBuf = new Float64Array(d);
    return this.accBuf;
  }
}

/** q . k over D elements; four partial sums when D is a multiple of 4 (most head dims are). */
export function dot(q: Float32Array, qOff: number, keys: Float32Array, kOff: number, D: number): number {
  if ((D & 3) !== 0) {
    let s = 0;
    for (let d = 0; d < D; d++) s += q[qOff + d] * keys[kOff + d];
    return s;
  }
  let a = 0, b = 0, c = 0, e = 0;
  for (let d = 0; d < D; d += 4) {
    a += q[qOff + d] * keys[kOff + d];
    b += q[qOff + d + 1] * keys[kOff + d + 1];
    c += q[qOff + d + 2] * keys[kOff + d + 2];
    e += q[qOff + d + 3] * keys[kOff + d + 3];
  }
  return a + b + c + e;
}

/** acc += w0 * values[o0 ..] + w1 * values[o1 ..] (two rows per pass halves the acc traffic). */
function accumulatePair(acc: Float64Array, values: Float32Array, w0: number, o0: number, w1: number, o1: number, D: number): void {
  for (let d = 0; d < D; d++) acc[d] += w0 * values[o0 + d] + w1 * values[o1 + d];
}

/**
 * Attend q[qOff .. qOff+D) to the rows of one KV head given as
 *   ranges: flat [start0, end0, start1, end1, ...], `rangeCount` half-open row ranges, and
 *   rows:   `rowCount` single rows (none of them inside a range).
 * keys/values: the head's [rows, D] buffers. The caller clips everything to causality. Writes
 * out[outOff .. outOff+D) (zeros when nothing is visited) and returns the number of keys visited.
 */
export function attendSparseRows(
  q: Float32Array, qOff: number,
  keys: Float32Array, values: Float32Array, D: number,
  ranges: Int32Array, rangeCount: number,
  rows: Int32Array | null, rowCount: number,
  scale: number, softcap: number | null,
  out: Float32Array, outOff: number,
  scratch: SparseAttentionScratch,
): number {
  let total = rowCount;
  for (let r = 0; r < rangeCount; r++) total += ranges[2 * r + 1] - ranges[2 * r];
  if (total <= 0) {
    out.fill(0, outOff, outOff + D);
    return 0;
  }
  const s = scratch.scores(total);
  let max = -Infinity;
  let i = 0;
  for (let r = 0; r < rangeCount; r++) {
    const end = ranges[2 * r + 1];
    for (let row = ranges[2 * r]; row < end; row++) {
      const v = dot(q, qOff, keys, row * D, D) * scale;
      s[i++] = v;
      if (v > max) max = v;
    }
  }
  for (let c = 0; c < rowCount; c++) {
    const v = dot(q, qOff, keys, rows![c] * D, D) * scale;
    s[i++] = v;
    if (v > max) max = v;
  }
  if (softcap !== null) {
    max = -Infinity;
    for (let j = 0; j < total; j++) {
      const v = softcap * Math.tanh(s[j] / softcap);
      s[j] = v;
      if (v > max) max = v;
    }
  }
  let sum = 0;
  for (let j = 0; j < total; j++) {
    const e = Math.exp(s[j] - max);
    s[j] = e;
    sum += e;
  }
  const acc = scratch.acc(D);
  acc.fill(0, 0, D);
  i = 0;
  for (let r = 0; r < rangeCount; r++) {
    const end = ranges[2 * r + 1];
    let row = ranges[2 * r];
    for (; row + 1 < end; row += 2, i += 2) accumulatePair(acc, values, s[i], row * D, s[i + 1], row * D + D, D);
    if (row < end) accumulatePair(acc, values, s[i++], row * D, 0, row * D, D);
  }
  for (let c = 0; c < rowCount; c++) accumulatePair(acc, values, s[i++], rows![c] * D, 0, rows![c] * D, D);
  const inv = 1 / sum;
  for (let d = 0; d < D; d++) out[outOff + d] = acc[d] * inv;
  return total;
}

/** buf with the pair (a, b) at pair slot `index`: buf itself, or a copy of twice the length when full. */
export function withPair(buf: Int32Array<ArrayBuffer>, index: number, a: number, b: number): Int32Array<ArrayBuffer> {
  if (buf.length < 2 * (index + 1)) {
    const grown = new Int32Array(buf.length * 2);
    grown.set(buf);
    buf = grown;
  }
  buf[2 * index] = a;
  buf[2 * index + 1] = b;
  return buf;
}

/** A growable flat list of half-open ranges [start, end), reused across queries. */
export class RangeList {
  data = new Int32Array(64);
  count = 0;
  clear(): void {
    this.count = 0;
  }
  /** Append [start, end) unless empty; merges with the previous range when they touch. */
  push(start: number, end: number): void {
    if (end <= start) return;
    const c = this.count;
    if (c > 0 && this.data[2 * c - 1] === start) {
      this.data[2 * c - 1] = end;
      return;
    }
    this.data = withPair(this.data, c, start, end);
    this.count = c + 1;
  }
}

/** Buffers of the four-query kernel, reused across calls. */
export class SparseAttentionScratch4 {
  private order = new Int32Array(1024);
  private scoreBufs = [new Float64Array(1024), new Float64Array(1024), new Float64Array(1024), new Float64Array(1024)];
  private accBuf = new Float64Array(4 * 128);
  rows(n: number): Int32Array {
    if (this.order.length < n) this.order = new Int32Array(Math.max(n, this.order.length * 2));
    return this.order;
  }
  scores(n: number): Float64Array[] {
    if (this.scoreBufs[0].length < n) {
      const size = Math.max(n, this.scoreBufs[0].length * 2);
      this.scoreBufs = this.scoreBufs.map(() => new Float64Array(size));
    }
    return this.scoreBufs;
  }
  acc(d: number): Float64Array {
    if (this.accBuf.length < 4 * d) this.accBuf = new Float64Array(4 * d);
    return this.accBuf;
  }
}

/**
 * Up to four queries of one head against one shared key set of one KV head (the rows of a query
 * block in prefill share their selection): each key is loaded once for the four dot products and each
 * value once for the four accumulators, which is what makes this faster than four single calls.
 *   count: active queries (1..4); entries past it in the small arrays are ignored.
 *   qOffs[i]: offset of query i in q; outOffs[i]: offset of its output in out.
 *   ranges/rows: as attendSparseRows, shared by the queries.
 *   lower[i], upper[i]: query i only sees rows in [lower[i], upper[i]] (its causal limit, and the
 *   window start of a sliding-window layer); rows outside are skipped for it, and rows outside every
 *   query's interval are not visited at all.
 * Writes the number of keys each query attended into visited[0..count).
 */
export function attendSparseRows4(
  q: Float32Array, qOffs: Int32Array, count: number,
  keys: Float32Array, values: Float32Array, D: number,
  ranges: Int32Array, rangeCount: number,
  rows: Int32Array | null, rowCount: number,
  lower: Int32Array, upper: Int32Array,
  scale: number, softcap: number | null,
  out: Float32Array, outOffs: Int32Array,
  scratch: SparseAttentionScratch4, visited: Int32Array,
): void {
  // Inactive slots repeat query 0 with an empty interval, so the loops below stay branch-light.
  const BIG = 0x7fffffff;
  const q0 = qOffs[0], q1 = count > 1 ? qOffs[1] : q0, q2 = count > 2 ? qOffs[2] : q0, q3 = count > 3 ? qOffs[3] : q0;
  const lo0 = lower[0], lo1 = count > 1 ? lower[1] : BIG, lo2 = count > 2 ? lower[2] : BIG, lo3 = count > 3 ? lower[3] : BIG;
  const hi0 = upper[0], hi1 = count > 1 ? upper[1] : -1, hi2 = count > 2 ? upper[2] : -1, hi3 = count > 3 ? upper[3] : -1;
  const gLo = Math.min(lo0, lo1, lo2, lo3), gHi = Math.max(hi0, hi1, hi2, hi3);
  let total = rowCount;
  for (let r = 0; r < rangeCount; r++) total += Math.max(0, ranges[2 * r + 1] - ranges[2 * r]);
  const order = scratch.rows(total);
  let n = 0;
  for (let r = 0; r < rangeCount; r++) {
    const end = Math.min(ranges[2 * r + 1], gHi + 1);
    for (let row = Math.max(ranges[2 * r], gLo); row < end; row++) order[n++] = row;
  }
  for (let c = 0; c < rowCount; c++) {
    const row = rows![c];
    if (row >= gLo && row <= gHi) order[n++] = row;
  }
  const [s0, s1, s2, s3] = scratch.scores(n);
  let m0 = -Infinity, m1 = -Infinity, m2 = -Infinity, m3 = -Infinity;
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  for (let j = 0; j < n; j++) {
    const row = order[j];
    const k = row * D;
    let a = 0, b = 0, c = 0, e = 0;
    for (let d = 0; d < D; d++) {
      const kv = keys[k + d];
      a += q[q0 + d] * kv;
      b += q[q1 + d] * kv;
      c += q[q2 + d] * kv;
      e += q[q3 + d] * kv;
    }
    a *= scale;
    b *= scale;
    c *= scale;
    e *= scale;
    if (softcap !== null) {
      a = softcap * Math.tanh(a / softcap);
      b = softcap * Math.tanh(b / softcap);
      c = softcap * Math.tanh(c / softcap);
      e = softcap * Math.tanh(e / softcap);
    }
    if (row >= lo0 && row <= hi0) { s0[j] = a; if (a > m0) m0 = a; c0++; } else s0[j] = -Infinity;
    if (row >= lo1 && row <= hi1) { s1[j] = b; if (b > m1) m1 = b; c1++; } else s1[j] = -Infinity;
    if (row >= lo2 && row <= hi2) { s2[j] = c; if (c > m2) m2 = c; c2++; } else s2[j] = -Infinity;
    if (row >= lo3 && row <= hi3) { s3[j] = e; if (e > m3) m3 = e; c3++; } else s3[j] = -Infinity;
  }
  // A query with no visible key keeps max -Infinity: give it 0 so its weights are exp(-Inf) = 0.
  if (c0 === 0) m0 = 0;
  if (c1 === 0) m1 = 0;
  if (c2 === 0) m2 = 0;
  if (c3 === 0) m3 = 0;
  let z0 = 0, z1 = 0, z2 = 0, z3 = 0;
  for (let j = 0; j < n; j++) {
    const e0 = Math.exp(s0[j] - m0), e1 = Math.exp(s1[j] - m1), e2 = Math.exp(s2[j] - m2), e3 = Math.exp(s3[j] - m3);
    s0[j] = e0;
    s1[j] = e1;
    s2[j] = e2;
    s3[j] = e3;
    z0 += e0;
    z1 += e1;
    z2 += e2;
    z3 += e3;
  }
  const acc = scratch.acc(D);
  acc.fill(0, 0, 4 * D);
  const D2 = 2 * D, D3 = 3 * D;
  for (let j = 0; j < n; j++) {
    const w0 = s0[j], w1 = s1[j], w2 = s2[j], w3 = s3[j];
    const v = order[j] * D;
    for (let d = 0; d < D; d++) {
      const x = values[v + d];
      acc[d] += w0 * x;
      acc[D + d] += w1 * x;
      acc[D2 + d] += w2 * x;
      acc[D3 + d] += w3 * x;
    }
  }
  writeOutput(out, outOffs[0], acc, 0, D, z0, c0);
  visited[0] = c0;
  if (count > 1) { writeOutput(out, outOffs[1], acc, D, D, z1, c1); visited[1] = c1; }
  if (count > 2) { writeOutput(out, outOffs[2], acc, D2, D, z2, c2); visited[2] = c2; }
  if (count > 3) { writeOutput(out, outOffs[3], acc, D3, D, z3, c3); visited[3] = c3; }
}

function writeOutput(out: Float32Array, o: number, acc: Float64Array, a: number, D: number, sum: number, visited: number): void {
  if (visited === 0) {
    out.fill(0, o, o + D);
    return;
  }
  const inv = 1 / sum;
  for (let d = 0; d < D; d++) out[o + d] = acc[a + d] * inv;
}

/** Per-group index arrays of attendQueryRun, reused. */
export class QueryRunScratch {
  readonly kernel = new SparseAttentionScratch4();
  readonly qOffs = new Int32Array(4);
  readonly outOffs = new Int32Array(4);
  readonly lower = new Int32Array(4);
  readonly upper = new Int32Array(4);
  readonly visited = new Int32Array(4);
}

/**
 * A run of consecutive prefill queries of one head that share a key set (ranges + rows), four at a
 * time. Query t (t in [t0, t1)) sits at position queryStart + t, which is also its causal row limit
 * (prefill caches hold rows = positions); with a sliding window it also sees no row below
 * position - window + 1. q/out: [T, H, D]. Returns the keys attended, summed over the run.
 */
export function attendQueryRun(
  q: Float32Array, out: Float32Array, H: number, head: number, D: number,
  t0: number, t1: number, queryStart: number, window: number | null,
  keys: Float32Array, values: Float32Array,
  ranges: Int32Array, rangeCount: number, rows: Int32Array | null, rowCount: number,
  scale: number, softcap: number | null, scratch: QueryRunScratch,
): number {
  let attended = 0;
  for (let t = t0; t < t1; t += 4) {
    const count = Math.min(4, t1 - t);
    for (let i = 0; i < count; i++) {
      const p = queryStart + t + i;
      scratch.qOffs[i] = scratch.outOffs[i] = ((t + i) * H + head) * D;
      scratch.upper[i] = p;
      scratch.lower[i] = window === null ? 0 : Math.max(0, p - window + 1);
    }
    attendSparseRows4(
      q, scratch.qOffs, count, keys, values, D, ranges, rangeCount, rows, rowCount, scratch.lower, scratch.upper,
      scale, softcap, out, scratch.outOffs, scratch.kernel, scratch.visited,
    );
    for (let i = 0; i < count; i++) attended += scratch.visited[i];
  }
  return attended;
}

/**
 * Scaled (and soft-capped) logits of up to four queries against keys 0 .. last[i] of one KV head:
 * rows[i][j] for j <= last[i]; each key is loaded once for the four dot products. Used by the
 * importance estimates (last queries against all keys). keys: [rows, D].
 */
export function scoreRows4(
  q: Float32Array, qOffs: Int32Array, count: number,
  keys: Float32Array, D: number, last: Int32Array,
  scale: number, softcap: number | null, rows: Float64Array[],
): void {
  const q0 = qOffs[0], q1 = count > 1 ? qOffs[1] : q0, q2 = count > 2 ? qOffs[2] : q0, q3 = count > 3 ? qOffs[3] : q0;
  const r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3];
  let end = last[0];
  for (let i = 1; i < count; i++) end = Math.max(end, last[i]);
  for (let j = 0; j <= end; j++) {
    const k = j * D;
    let a = 0, b = 0, c = 0, e = 0;
    for (let d = 0; d < D; d++) {
      const kv = keys[k + d];
      a += q[q0 + d] * kv;
      b += q[q1 + d] * kv;
      c += q[q2 + d] * kv;
      e += q[q3 + d] * kv;
    }
    a *= scale;
    b *= scale;
    c *= scale;
    e *= scale;
    if (softcap !== null) {
      a = softcap * Math.tanh(a / softcap);
      b = softcap * Math.tanh(b / softcap);
      c = softcap * Math.tanh(c / softcap);
      e = softcap * Math.tanh(e / softcap);
    }
    r0[j] = a;
    r1[j] = b;
    r2[j] = c;
    r3[j] = e;
  }
}

/**
 * Causal softmax weights of `count` consecutive queries of one query head: query i (row firstRow + i
 * of `queries`, at position firstPosition + i = p) against keys 0 .. p. Scores four queries per key
 * pass, then hands each query's weights to visit(row, p), with row[0 .. p] summing to 1 (`rows`'
 * four buffers are reused). queries: [rows, H, D]; keys: [>= last p + 1, D]; rows: four [>= p + 1].
 */
export function forEachCausalSoftmaxRow(
  queries: Float32Array, firstRow: number, firstPosition: number, count: number, H: number, head: number, D: number,
  keys: Float32Array, scale: number, softcap: number | null, rows: Float64Array[],
  visit: (row: Float64Array, p: number) => void,
): void {
  const qOffs = new Int32Array(4), last = new Int32Array(4);
  for (let i0 = 0; i0 < count; i0 += 4) {
    const c = Math.min(4, count - i0);
    for (let i = 0; i < c; i++) {
      qOffs[i] = ((firstRow + i0 + i) * H + head) * D;
      last[i] = firstPosition + i0 + i;
    }
    scoreRows4(queries, qOffs, c, keys, D, last, scale, softcap, rows);
    for (let i = 0; i < c; i++) {
      const p = last[i], row = rows[i];
      softmaxInPlace(row, p + 1);
      visit(row, p);
    }
  }
}

/** In place: softmax of row[0 .. len), returned as weights summing to 1. */
export function softmaxInPlace(row: Float64Array, len: number): void {
  let max = -Infinity;
  for (let j = 0; j < len; j++) if (row[j] > max) max = row[j];
  let sum = 0;
  for (let j = 0; j < len; j++) {
    const e = Math.exp(row[j] - max);
    row[j] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let j = 0; j < len; j++) row[j] *= inv;
}
