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
    if (this.data.length < 2 * (c + 1)) {
      const grown = new Int32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[2 * c] = start;
    this.data[2 * c + 1] = end;
    this.count = c + 1;
  }
}
