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
      const kOff = row * D;
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[qOff + d] * keys[kOff + d];
      let v = dot * scale;
      if (softcap !== null) v = softcap * Math.tanh(v / softcap);
      s[i++] = v;
      if (v > max) max = v;
    }
  }
  for (let c = 0; c < rowCount; c++) {
    const kOff = rows![c] * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qOff + d] * keys[kOff + d];
    let v = dot * scale;
    if (softcap !== null) v = softcap * Math.tanh(v / softcap);
    s[i++] = v;
    if (v > max) max = v;
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
    for (let row = ranges[2 * r]; row < end; row++) {
      const w = s[i++];
      const vOff = row * D;
      for (let d = 0; d < D; d++) acc[d] += w * values[vOff + d];
    }
  }
  for (let c = 0; c < rowCount; c++) {
    const w = s[i++];
    const vOff = rows![c] * D;
    for (let d = 0; d < D; d++) acc[d] += w * values[vOff + d];
  }
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
