/**
 * CPU attention kernels over a LayerKvCache head: the reference every other backend is checked
 * against. Scores are accumulated in float64 (JS numbers); softmax is computed exactly over the
 * visited keys (two passes: scores, then normalised weighted sum of values).
 *
 * All kernels take one query vector q[qOff .. qOff+D) and write out[outOff .. outOff+D).
 */

/** Scratch buffer for scores, grown on demand and reused across calls. */
export class ScoreScratch {
  private buf = new Float64Array(1024);
  get(n: number): Float64Array {
    if (this.buf.length < n) this.buf = new Float64Array(Math.max(n, this.buf.length * 2));
    return this.buf;
  }
}

function softcapped(x: number, cap: number | null): number {
  return cap === null ? x : cap * Math.tanh(x / cap);
}

/**
 * Attend to the contiguous rows [rowStart, rowEnd) of one KV head.
 * keys/values: the head's [rows, D] buffers.
 */
export function attendRowRange(
  q: Float32Array, qOff: number,
  keys: Float32Array, values: Float32Array, D: number,
  rowStart: number, rowEnd: number,
  scale: number, softcap: number | null,
  out: Float32Array, outOff: number,
  scratch: ScoreScratch,
): void {
  const n = rowEnd - rowStart;
  if (n <= 0) {
    out.fill(0, outOff, outOff + D);
    return;
  }
  const s = scratch.get(n);
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const kOff = (rowStart + i) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qOff + d] * keys[kOff + d];
    const v = softcapped(dot * scale, softcap);
    s[i] = v;
    if (v > max) max = v;
  }
  accumulate(s, n, max, (i) => (rowStart + i) * D, values, D, out, outOff);
}

function accumulate(
  s: Float64Array, n: number, max: number,
  rowOffset: (i: number) => number,
  values: Float32Array, D: number,
  out: Float32Array, outOff: number,
): void {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(s[i] - max);
    s[i] = e;
    sum += e;
  }
  const acc = new Float64Array(D);
  for (let i = 0; i < n; i++) {
    const w = s[i];
    const vOff = rowOffset(i);
    for (let d = 0; d < D; d++) acc[d] += w * values[vOff + d];
  }
  const inv = 1 / sum;
  for (let d = 0; d < D; d++) out[outOff + d] = acc[d] * inv;
}
