/**
 * Deterministic ranking helpers shared by the methods. torch.topk leaves the order of equal scores
 * unspecified; ours breaks ties by the lower index, so a selection is reproducible.
 */

/** Growable Int32 scratch. */
export class IndexScratch {
  buf = new Int32Array(256);
  get(n: number): Int32Array {
    if (this.buf.length < n) this.buf = new Int32Array(Math.max(n, this.buf.length * 2));
    return this.buf;
  }
}

/**
 * Writes 0..len-1 into idx[0..len) ordered by scores descending (ties: lower index first) and
 * returns that view. scores: [len]. NaN scores are ranked last.
 */
export function rankDescending(scores: Float64Array, len: number, idx: IndexScratch): Int32Array {
  const order = idx.get(len).subarray(0, len);
  for (let i = 0; i < len; i++) order[i] = i;
  order.sort((a, b) => {
    const sa = scores[a], sb = scores[b];
    if (sa === sb) return a - b;
    if (Number.isNaN(sa)) return 1;
    if (Number.isNaN(sb)) return -1;
    return sb > sa ? 1 : -1;
  });
  return order;
}

/** Sort the first `count` entries of a in place, ascending. */
export function sortAscending(a: Int32Array, count: number): void {
  a.subarray(0, count).sort();
}
