/**
 * What the host models of Quest's device selects (quest-grid-select-model, quest-window-select-model,
 * quest-guess-select-model) share: top-k.cuh's order keys and radix constants, the CPU method's answer a
 * select must reproduce, and the multi-block selects' frame: a unit's pages split into G contiguous
 * chunks (quest_grid_chunk), their AND / OR, the ranked bin's candidates resolved by every block on its
 * own, and each block writing its taken pages from its first slot (a slot written twice or left empty fails).
 */
import assert from 'node:assert/strict';
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

/** One block's part of a unit's row: pages [lo, hi) and their order keys. */
export interface ModelBlock { lo: number; hi: number; keys: number[] }

/** The unit's row split over G blocks as quest_grid_chunk splits it (ceil(pages / G) each, the last ones short or empty). */
export function chunkBlocks(scores: Float32Array, G: number): ModelBlock[] {
  const pages = scores.length;
  const chunk = Math.ceil(pages / G);
  return Array.from({ length: G }, (_, b) => {
    const lo = Math.min(pages, b * chunk), hi = Math.min(pages, lo + chunk);
    return { lo, hi, keys: Array.from(scores.subarray(lo, hi), orderKey) };
  });
}

/** The AND and OR of every block's keys (the unit's common bits and the bits some key has). */
export function andOrOf(blocks: ModelBlock[]): { and: number; or: number } {
  let and = 0xffffffff >>> 0, or = 0;
  for (const { keys } of blocks) for (const key of keys) { and = (and & key) >>> 0; or = (or | key) >>> 0; }
  return { and, or };
}

/**
 * A ranked bin's candidates (key, page) as one block resolves them: the first `quota` by (key desc, page asc)
 * are taken. Marks this block's untaken ones in `taken` (indexed from lo) and returns how many taken ones
 * lie before its chunk (they come before its first slot).
 */
export function resolveRanked(candidates: ReadonlyArray<{ key: number; page: number }>, quota: number, block: ModelBlock, taken: boolean[]): number {
  let takenBefore = 0;
  for (const c of candidates) {
    const rank = candidates.filter((o) => o.key > c.key || (o.key === c.key && o.page < c.page)).length;
    const isTaken = rank < quota;
    if (!isTaken && c.page >= block.lo && c.page < block.hi) taken[c.page - block.lo] = false;
    if (isTaken && c.page < block.lo) takenBefore++;
  }
  return takenBefore;
}

/** Block b writes its taken pages in order from slot `first` of the unit's k-slot list (-1: not yet written). */
export function writeBlockPages(list: number[], b: number, block: ModelBlock, taken: boolean[], first: number): void {
  let rank = 0;
  block.keys.forEach((_, i) => {
    if (!taken[i]) return;
    const slot = first + rank++;
    assert.ok(slot < list.length, `block ${b} writes slot ${slot} of ${list.length}`);
    assert.equal(list[slot], -1, `slot ${slot} written twice`);
    list[slot] = block.lo + i;
  });
}

/** The list once every block wrote its part: every slot written. */
export function assertListComplete(list: number[]): number[] {
  assert.ok(!list.includes(-1), 'every slot written');
  return list;
}
