/**
 * What the host models of Quest's device selects (quest-grid-select-model, quest-window-select-model,
 * quest-guess-select-model) share: top-k.cuh's order keys and radix constants, and the CPU method's
 * answer a select must reproduce.
 */
import { IndexScratch, rankDescending } from '../../src/methods/select.js';

/** Bits a radix pass bins (top-k.cuh). */
export const RADIX_BITS = 11;
/** The most candidates the select ranks exactly from its candidate list. */
export const RANK_LIMIT = 256;

const bits = new DataView(new ArrayBuffer(4));
/** topk_order_key (top-k.cuh): larger score, larger key; NaN lowest (1); -0 as +0; never 0. */
export function orderKey(x: number): number {
  if (Number.isNaN(x)) return 1;
  bits.setFloat32(0, x === 0 ? 0 : x);
  const b = bits.getUint32(0);
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

/** The k pages the CPU ranking keeps (score descending, page ascending), listed in ascending order. */
export function expectedPages(scores: Float32Array, k: number): number[] {
  const order = rankDescending(Float64Array.from(scores), scores.length, new IndexScratch());
  return Array.from(order.subarray(0, k)).sort((a, b) => a - b);
}
