/**
 * Host side of the wgmma block-sparse prefill (kernels/block-sparse-prefill-wgmma.cu): how it tiles
 * the queries into CTAs, the step lists block_sparse_wgmma_steps writes, and host references of both
 * that the tests hold the kernels to. No GPU needed here.
 *
 * A CTA is 128 query rows of one query head: 8 slots of 16 rows (query tiles 8·cr .. 8·cr + 7);
 * consumer warpgroup w owns slots 4w .. 4w + 3. Its step list holds the 16-key tiles any slot attends
 * (a tile wholly right of the slot's diagonal or at/after the cache end dropped), as entries
 * keyTile | slotMask << 24 (int32, so a mask with bit 7 set reads negative), SUB = blockN / 16 a step,
 * grouped by which warpgroups use a tile: steps of tiles both use, then steps of warpgroup 0's own
 * tiles alternating with steps of warpgroup 1's own, then the longer class's rest; each class ascending
 * by tile, its last step padded with entry 0 (mask 0).
 */
import { type ChunkLists, DEVICE_TILE } from './block-sparse-layout.js';

/** Query rows per CTA (two consumer warpgroups of 64) and 16-row slots in it. */
export const WGMMA_CTA_ROWS = 128;
export const WGMMA_CTA_SLOTS = WGMMA_CTA_ROWS / DEVICE_TILE;

export interface WgmmaStepGeometry {
  blockN: 64 | 128;
  subTiles: number; // entries per step: blockN / 16
  numQueryTiles: number;
  numCtaRows: number; // CTAs along the queries, per head
  numHeads: number;
  /** Entries per CTA: the union bound (key tiles, or the slots' lists' worth) plus three padded steps. */
  stepStride: number;
}

export function wgmmaStepGeometry(numTokens: number, numHeads: number, listStride: number, chunkSize: number, blockN: 64 | 128): WgmmaStepGeometry {
  const subTiles = blockN / DEVICE_TILE;
  const numQueryTiles = Math.ceil(numTokens / DEVICE_TILE);
  const union = Math.min(numQueryTiles, WGMMA_CTA_SLOTS * listStride * (chunkSize / DEVICE_TILE));
  return {
    blockN, subTiles, numQueryTiles, numHeads,
    numCtaRows: Math.ceil(numQueryTiles / WGMMA_CTA_SLOTS),
    stepStride: subTiles * Math.max(1, Math.ceil((union + 3 * (subTiles - 1)) / subTiles)),
  };
}

/** 0: both warpgroups use the tile, 1: warpgroup 0 only, 2: warpgroup 1 only. */
function tileClass(mask: number): 0 | 1 | 2 {
  const a = mask & 0x0f, b = mask & 0xf0;
  return a && b ? 0 : a ? 1 : 2;
}

/** Step index of the k-th step of a class (the kernel's step_of). */
function stepOf(cls: 0 | 1 | 2, k: number, steps: [number, number, number]): number {
  if (cls === 0) return k;
  const paired = Math.min(steps[1], steps[2]);
  return steps[0] + (k < paired ? 2 * k + (cls - 1) : paired + k);
}

/** Slot masks of the key tiles CTA (head h, row cr) attends: key tile → 8-bit mask, ascending. */
export function wgmmaCtaTileMasks(l: ChunkLists, kvLen: number, h: number, cr: number): Map<number, number> {
  return ctaTileMasksForSlots(l, kvLen, h, cr, WGMMA_CTA_SLOTS);
}

/**
 * Slot masks of the key tiles a CTA of `slots` 16-row slots (head h, CTA row cr) attends: key tile →
 * mask (bit = slot, up to 30 slots), ascending. The 128-row kernel's masks are slots = 8; larger CTAs
 * (3 or 4 consumer warpgroups) exist so far only in the work model (bench/block-sparse-wgmma-model.ts).
 */
export function ctaTileMasksForSlots(l: ChunkLists, kvLen: number, h: number, cr: number, slots: number): Map<number, number> {
  if (!Number.isInteger(slots) || slots < 1 || slots > 30) throw new Error(`ctaTileMasksForSlots: slots must be an integer in 1..30, got ${slots}`);
  const f = l.chunkSize / DEVICE_TILE;
  const numQueryTiles = Math.ceil(l.numTokens / DEVICE_TILE);
  const masks = new Map<number, number>();
  for (let slot = 0; slot < slots; slot++) {
    const qt = cr * slots + slot;
    if (qt >= numQueryTiles) break;
    const row = h * l.numChunks + Math.floor(qt / f);
    for (let i = 0; i < l.counts[row]; i++) {
      for (let u = 0; u < f; u++) {
        const kt = l.lists[row * l.stride + i] * f + u;
        if (kt * DEVICE_TILE > qt * DEVICE_TILE + DEVICE_TILE - 1 || kt * DEVICE_TILE >= kvLen) continue;
        masks.set(kt, (masks.get(kt) ?? 0) | (1 << slot));
      }
    }
  }
  return new Map([...masks.entries()].sort((a, b) => a[0] - b[0]));
}

/** Host reference of block_sparse_wgmma_steps for one CTA: its entries, steps × SUB (see the file comment). */
export function wgmmaCtaSteps(l: ChunkLists, kvLen: number, geo: WgmmaStepGeometry, h: number, cr: number): number[] {
  const SUB = geo.subTiles;
  const classes: number[][] = [[], [], []];
  for (const [kt, mask] of wgmmaCtaTileMasks(l, kvLen, h, cr)) classes[tileClass(mask)].push(kt | (mask << 24));
  const steps = classes.map((c) => Math.ceil(c.length / SUB)) as [number, number, number];
  const out = new Array<number>((steps[0] + steps[1] + steps[2]) * SUB).fill(0);
  classes.forEach((entries, cls) => {
    entries.forEach((e, k) => { out[stepOf(cls as 0 | 1 | 2, Math.floor(k / SUB), steps) * SUB + (k % SUB)] = e; });
  });
  return out;
}

/**
 * The (query, key) pairs the attention kernel leaves unmasked when it runs over `entries` (one CTA's
 * steps), by the kernel's rules: a warpgroup computes a step when any of its slots' mask bits is set
 * in it; in a computed step, a warp keeps the sub-tiles its slot selected, minus keys right of the
 * query or at/after kvLen; rows at/after T are not stored. Returned per query as sorted key lists
 * (for the tests: equal to the selection's own keys of every query).
 */
export function wgmmaAttendedKeys(entries: number[], geo: WgmmaStepGeometry, T: number, kvLen: number, cr: number): Map<number, number[]> {
  const SUB = geo.subTiles;
  const keys = new Map<number, number[]>();
  for (let step = 0; step * SUB < entries.length; step++) {
    const ent = entries.slice(step * SUB, step * SUB + SUB);
    for (let wg = 0; wg < 2; wg++) {
      if (!ent.some((e) => ((e >>> 24) >> (4 * wg)) & 0xf)) continue; // warpgroup skips the step
      for (let wl = 0; wl < 4; wl++) {
        const slot = 4 * wg + wl;
        for (const e of ent) {
          if (!(((e >>> 24) >> slot) & 1)) continue; // masked to -inf for this warp
          const n0 = (e & 0xffffff) * DEVICE_TILE;
          for (let r = 0; r < DEVICE_TILE; r++) {
            const query = cr * WGMMA_CTA_ROWS + slot * DEVICE_TILE + r;
            if (query >= T) continue;
            for (let key = n0; key < n0 + DEVICE_TILE; key++) {
              if (key > query || key >= kvLen) continue;
              const list = keys.get(query) ?? [];
              list.push(key);
              keys.set(query, list);
            }
          }
        }
      }
    }
  }
  for (const list of keys.values()) list.sort((a, b) => a - b);
  return keys;
}

/** Leading steps of tiles both warpgroups use (the kernel's stepsBoth: turns are taken in them). */
export function wgmmaStepsBoth(entries: number[], subTiles: number): number {
  let steps = 0;
  while (steps * subTiles < entries.length && entries.slice(steps * subTiles, (steps + 1) * subTiles).some((e) => tileClass(e >>> 24) === 0)) steps++;
  return steps;
}

/** How many steps each consumer warpgroup computes in one CTA's list (for the benchmark's work model). */
export function wgmmaComputedSteps(entries: number[], subTiles: number): [number, number] {
  const done: [number, number] = [0, 0];
  for (let step = 0; step * subTiles < entries.length; step++) {
    const ent = entries.slice(step * subTiles, step * subTiles + subTiles);
    for (let wg = 0; wg < 2; wg++) if (ent.some((e) => ((e >>> 24) >> (4 * wg)) & 0xf)) done[wg]++;
  }
  return done;
}

/**
 * The work one CTA of `consumers` warpgroups (64 rows = 4 slots each) asks for when its key tiles are
 * grouped by the set of warpgroups that use them (the 2-consumer kernel's grouping, generalised: one
 * class per non-empty warpgroup set, each laid out in its own ceil(size / SUB) steps, so a warpgroup
 * computes exactly the steps of the classes it belongs to).
 *   tiles: the union's key tiles (each gathered once per CTA);
 *   computed: steps each warpgroup computes (for consumers = 2 equal to wgmmaComputedSteps of the
 *     kernel's own step list, which the host tests check);
 *   unpaired: steps of the busiest warpgroup beyond the second busiest (its tail, with no partner
 *     running beside it; for 2 consumers the model's |a − b|).
 * masks: key tile → slot mask of a CTA of 4·consumers slots (ctaTileMasksForSlots).
 */
export function groupedCtaWork(masks: Map<number, number>, consumers: number, subTiles: number): { tiles: number; computed: number[]; unpaired: number } {
  if (!Number.isInteger(consumers) || consumers < 1 || consumers > 7) throw new Error(`groupedCtaWork: consumers must be an integer in 1..7, got ${consumers}`);
  const classSizes = new Map<number, number>(); // warpgroup set (bit w = warpgroup w) → tiles
  for (const mask of masks.values()) {
    let set = 0;
    for (let w = 0; w < consumers; w++) if ((mask >> (4 * w)) & 0xf) set |= 1 << w;
    if (set === 0 || mask >> (4 * consumers) !== 0) throw new Error(`groupedCtaWork: mask ${mask.toString(2)} does not fit ${consumers} warpgroups`);
    classSizes.set(set, (classSizes.get(set) ?? 0) + 1);
  }
  const computed = new Array<number>(consumers).fill(0);
  for (const [set, size] of classSizes) {
    const steps = Math.ceil(size / subTiles);
    for (let w = 0; w < consumers; w++) if ((set >> w) & 1) computed[w] += steps;
  }
  const sorted = [...computed].sort((a, b) => b - a);
  return { tiles: masks.size, computed, unpaired: sorted[0] - (sorted[1] ?? 0) };
}
