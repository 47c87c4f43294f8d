/**
 * Host twin of the step schedule of vertical-slash-prefill-wgmma.cu (tests, and the work model in
 * docs/perf.md). The kernel writes no step list: its producer and consumers each walk the index the
 * same way, so this module states that walk once on the host, over a per-head VerticalSlashLayout:
 *
 * - a 64-row pattern block's tiles: 64-key tiles from each range's start up to the range's end clipped
 *   to the block's last row, then ceil(columns / 64) tiles of gathered columns;
 * - a CTA = blocks 2·cr (consumer warpgroup 0) and 2·cr + 1 (warpgroup 1): its steps alternate the two
 *   blocks' tiles while both have some, then the longer one's remainder; a consumer finds the step of
 *   its k-th tile as k < paired ? 2k + w : paired + k (paired = the shorter block's tile count).
 */
import { PATTERN_BLOCK, type VerticalSlashLayout } from '../../methods/vertical-slash-pattern.js';

/** Keys per step: the index's range grain. */
export const VS_WGMMA_STEP_KEYS = PATTERN_BLOCK;

/** One step's tile: keys key .. key + 63 of a range, or listed columns slot .. slot + 63. */
export type VsWgmmaTile = { kind: 'range'; key: number } | { kind: 'columns'; slot: number };

/** The tiles of block m of a layout whose queries are positions queryStart .. queryStart + n - 1. */
export function verticalSlashBlockTiles(layout: VerticalSlashLayout, m: number, queryStart = 0): VsWgmmaTile[] {
  if (!(m >= 0 && m < layout.numBlocks)) throw new Error(`vertical-slash wgmma schedule: block ${m} outside 0..${layout.numBlocks - 1}`);
  const maxPos = queryStart + Math.min((m + 1) * PATTERN_BLOCK, layout.n) - 1;
  const tiles: VsWgmmaTile[] = [];
  for (let r = layout.rangeStart[m]; r < layout.rangeStart[m + 1]; r++) {
    const end = Math.min(layout.ranges[2 * r + 1], maxPos + 1);
    for (let key = layout.ranges[2 * r]; key < end; key += VS_WGMMA_STEP_KEYS) tiles.push({ kind: 'range', key });
  }
  const numCols = layout.columnStart[m + 1] - layout.columnStart[m];
  for (let slot = 0; slot < numCols; slot += VS_WGMMA_STEP_KEYS) tiles.push({ kind: 'columns', slot });
  return tiles;
}

/** Step index of a warpgroup's k-th tile (the consumer's formula). */
export function vsWgmmaStepOf(warpgroup: 0 | 1, k: number, paired: number): number {
  return k < paired ? 2 * k + warpgroup : paired + k;
}

/** One CTA's steps in the producer's order: which warpgroup (= block 2·cr + w) and its tile. */
export interface VsWgmmaStep { warpgroup: 0 | 1; tile: VsWgmmaTile }

/** The owner (warpgroup) of each step of a CTA whose blocks have n0 and n1 tiles: the producer's order. */
export function vsWgmmaStepOwners(n0: number, n1: number): (0 | 1)[] {
  const paired = Math.min(n0, n1);
  const longer: 0 | 1 = n0 > n1 ? 0 : 1;
  return Array.from({ length: n0 + n1 }, (_, i) => (i < 2 * paired ? (i & 1) as 0 | 1 : longer));
}

export function verticalSlashCtaSteps(layout: VerticalSlashLayout, cr: number, queryStart = 0): VsWgmmaStep[] {
  const own = ([0, 1] as const).map((w) => (2 * cr + w < layout.numBlocks ? verticalSlashBlockTiles(layout, 2 * cr + w, queryStart) : []));
  const next = [0, 0];
  return vsWgmmaStepOwners(own[0].length, own[1].length).map((w) => ({ warpgroup: w, tile: own[w][next[w]++] }));
}
