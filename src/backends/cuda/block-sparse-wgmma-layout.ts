/**
 * Host side of the wgmma block-sparse prefill (kernels/block-sparse-prefill-wgmma.cu): how it tiles
 * the queries into CTAs, the step lists block_sparse_wgmma_steps writes, and host references of both
 * that the tests hold the kernels to. No GPU needed here.
 *
 * A CTA is 64 · consumers query rows of one query head (2 consumer warpgroups: 128 rows, the kernel's
 * default; 3: 192 rows), 16-row slots (query tiles slots·cr .. slots·cr + slots − 1); consumer
 * warpgroup w owns slots 4w .. 4w + 3. Its step list holds the 16-key tiles any slot attends (a tile
 * wholly right of the slot's diagonal or at/after the cache end dropped), as entries
 * keyTile | slotMask << (32 − slots) (int32, so a mask with its top bit set reads negative), SUB =
 * blockN / 16 a step, grouped by the set of warpgroups that use a tile (one class per set), classes in
 * tiers: the tiles all warpgroups use first; then, at 2 consumers, warpgroup 0's own steps alternating
 * with warpgroup 1's; at 3, the three pair classes round-robin, then the three single-warpgroup classes
 * round-robin; a tier's classes that run out drop out of its rounds. Each class ascending by tile, its
 * last step padded with entry 0 (mask 0).
 */
import { type ChunkLists, DEVICE_TILE } from './block-sparse-layout.js';

/** Consumer warpgroups of a CTA (64 query rows each). */
export type WgmmaConsumers = 2 | 3;

/**
 * Order in which the attention grid's blocks take (CTA row, head) (the kernel's CTA_ORDER 0 / 1):
 *   heads: longest-first row blocks, all heads of a row block in a row (the dense prefill's order), so
 *          the CTAs resident at once gather from every KV head's K/V;
 *   kv:    KV-head-major: one KV head's CTAs (its query heads interleaved, row blocks longest-first)
 *          before the next KV head's, so the resident CTAs gather from one KV head's K/V, which fits
 *          the L2 up to 64K tokens (bench/block-sparse-l2-model.ts counts what each order misses).
 */
export type WgmmaCtaOrder = 'heads' | 'kv';

/**
 * (CTA row, head) of the i-th block of the attention grid ([numCtaRows, H] blocks, launched in linear
 * order), as the kernel's block_sparse_cta_coords computes it for each order.
 */
export function wgmmaCtaOfLaunch(order: WgmmaCtaOrder, i: number, numCtaRows: number, numHeads: number, numKvHeads: number): { cr: number; h: number } {
  if (!(numKvHeads > 0) || numHeads % numKvHeads !== 0) throw new Error(`wgmmaCtaOfLaunch: ${numHeads} heads are not a multiple of ${numKvHeads} KV heads`);
  if (!Number.isInteger(i) || i < 0 || i >= numCtaRows * numHeads) throw new Error(`wgmmaCtaOfLaunch: block ${i} outside a grid of ${numCtaRows} x ${numHeads}`);
  if (order === 'heads') return { cr: numCtaRows - 1 - Math.floor(i / numHeads), h: i % numHeads };
  const group = numHeads / numKvHeads;
  const perKvHead = numCtaRows * group;
  const hk = Math.floor(i / perKvHead), r = i % perKvHead;
  return { cr: numCtaRows - 1 - Math.floor(r / group), h: hk * group + (r % group) };
}

/** Query rows per CTA of the default kernel (two consumer warpgroups of 64) and 16-row slots in it. */
export const WGMMA_CTA_ROWS = 128;
export const WGMMA_CTA_SLOTS = WGMMA_CTA_ROWS / DEVICE_TILE;

/** Query rows of a CTA of `consumers` warpgroups. */
export function wgmmaCtaRows(consumers: WgmmaConsumers): number {
  return 64 * consumers;
}

export interface WgmmaStepGeometry {
  blockN: 64 | 128;
  consumers: WgmmaConsumers;
  ctaRows: number; // 64 · consumers
  slots: number; // 16-row slots per CTA: 4 · consumers
  subTiles: number; // entries per step: blockN / 16
  numQueryTiles: number;
  numCtaRows: number; // CTAs along the queries, per head
  numHeads: number;
  /** Entries per CTA: the union bound (key tiles, or the slots' lists' worth) plus one padded step per class. */
  stepStride: number;
}

export function wgmmaStepGeometry(
  numTokens: number, numHeads: number, listStride: number, chunkSize: number, blockN: 64 | 128, consumers: WgmmaConsumers = 2,
): WgmmaStepGeometry {
  const subTiles = blockN / DEVICE_TILE;
  const slots = 4 * consumers;
  const numQueryTiles = Math.ceil(numTokens / DEVICE_TILE);
  const union = Math.min(numQueryTiles, slots * listStride * (chunkSize / DEVICE_TILE));
  const classes = CLASS_SETS[consumers].length;
  return {
    blockN, consumers, ctaRows: wgmmaCtaRows(consumers), slots, subTiles, numQueryTiles, numHeads,
    numCtaRows: Math.ceil(numQueryTiles / slots),
    stepStride: subTiles * Math.max(1, Math.ceil((union + classes * (subTiles - 1)) / subTiles)),
  };
}

/** Bit of an entry where its slot mask starts: 24 for 8 slots, 20 for 12. */
export function wgmmaMaskShift(consumers: WgmmaConsumers): number {
  return 32 - 4 * consumers;
}

/** An entry's slot mask (bit = slot of the CTA). */
export function wgmmaEntryMask(entry: number, consumers: WgmmaConsumers): number {
  return entry >>> wgmmaMaskShift(consumers);
}

/** An entry's key tile. */
export function wgmmaEntryTile(entry: number, consumers: WgmmaConsumers): number {
  return entry & ((1 << wgmmaMaskShift(consumers)) - 1);
}

/**
 * The classes in step order, as warpgroup sets (bit w = warpgroup w), and the tier of each: 2 consumers:
 * both, then warpgroup 0's and warpgroup 1's own; 3: all, then the pairs {0,1} {0,2} {1,2}, then the
 * singles {0} {1} {2} (the kernel's class_of).
 */
const CLASS_SETS: Record<WgmmaConsumers, number[]> = { 2: [0b11, 0b01, 0b10], 3: [0b111, 0b011, 0b101, 0b110, 0b001, 0b010, 0b100] };
const CLASS_TIERS: Record<WgmmaConsumers, number[]> = { 2: [0, 1, 1], 3: [0, 1, 1, 1, 2, 2, 2] };

/** Set of the warpgroups whose slots a mask names (bit w = warpgroup w). */
function warpgroupSet(mask: number, consumers: WgmmaConsumers): number {
  let set = 0;
  for (let w = 0; w < consumers; w++) if ((mask >>> (4 * w)) & 0xf) set |= 1 << w;
  return set;
}

/** Class of a tile's slot mask (its index in CLASS_SETS). */
function tileClass(mask: number, consumers: WgmmaConsumers): number {
  const cls = CLASS_SETS[consumers].indexOf(warpgroupSet(mask, consumers));
  if (cls < 0) throw new Error(`wgmma step lists: slot mask ${mask.toString(2)} names no warpgroup`);
  return cls;
}

/**
 * Step index of the k-th step of a class (the kernel's step_of): the earlier tiers' steps, then, round
 * by round, every class of the tier that still has a k-th step, in class order.
 */
function stepOf(cls: number, k: number, steps: number[], consumers: WgmmaConsumers): number {
  const tiers = CLASS_TIERS[consumers];
  let at = 0;
  steps.forEach((n, c) => {
    if (tiers[c] < tiers[cls]) at += n;
    else if (tiers[c] === tiers[cls]) at += Math.min(n, k) + (c < cls && n > k ? 1 : 0);
  });
  return at;
}

/** Slot masks of the key tiles CTA (head h, row cr) of `consumers` warpgroups attends: key tile → mask, ascending. */
export function wgmmaCtaTileMasks(l: ChunkLists, kvLen: number, h: number, cr: number, consumers: WgmmaConsumers = 2): Map<number, number> {
  return ctaTileMasksForSlots(l, kvLen, h, cr, 4 * consumers);
}

/**
 * Slot masks of the key tiles a CTA of `slots` 16-row slots (head h, CTA row cr) attends: key tile →
 * mask (bit = slot, up to 30 slots), ascending. The kernel's masks are slots = 8 (two consumer
 * warpgroups) or 12 (three); 16 slots (four) exist only in the work model (bench/block-sparse-wgmma-model.ts).
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
  const { subTiles: SUB, consumers } = geo;
  const shift = wgmmaMaskShift(consumers);
  const classes: number[][] = CLASS_SETS[consumers].map(() => []);
  for (const [kt, mask] of wgmmaCtaTileMasks(l, kvLen, h, cr, consumers)) classes[tileClass(mask, consumers)].push(kt | (mask << shift));
  const steps = classes.map((c) => Math.ceil(c.length / SUB));
  const out = new Array<number>(steps.reduce((a, b) => a + b, 0) * SUB).fill(0);
  classes.forEach((entries, cls) => {
    entries.forEach((e, k) => { out[stepOf(cls, Math.floor(k / SUB), steps, consumers) * SUB + (k % SUB)] = e; });
  });
  return out;
}

/** Whether warpgroup wg computes a step: some entry's mask has one of its slots. */
function warpgroupComputes(step: number[], wg: number, consumers: WgmmaConsumers): boolean {
  return step.some((e) => (wgmmaEntryMask(e, consumers) >>> (4 * wg)) & 0xf);
}

/**
 * The (query, key) pairs the attention kernel leaves unmasked when it runs over `entries` (one CTA's
 * steps), by the kernel's rules: a warpgroup computes a step when any of its slots' mask bits is set
 * in it; in a computed step, a warp keeps the sub-tiles its slot selected, minus keys right of the
 * query or at/after kvLen; rows at/after T are not stored. Returned per query as sorted key lists
 * (for the tests: equal to the selection's own keys of every query).
 */
export function wgmmaAttendedKeys(entries: number[], geo: WgmmaStepGeometry, T: number, kvLen: number, cr: number): Map<number, number[]> {
  const { subTiles: SUB, consumers } = geo;
  const keys = new Map<number, number[]>();
  for (let step = 0; step * SUB < entries.length; step++) {
    const ent = entries.slice(step * SUB, step * SUB + SUB);
    for (let wg = 0; wg < consumers; wg++) {
      if (!warpgroupComputes(ent, wg, consumers)) continue; // warpgroup skips the step
      for (let wl = 0; wl < 4; wl++) {
        const slot = 4 * wg + wl;
        for (const e of ent) {
          if (!((wgmmaEntryMask(e, consumers) >>> slot) & 1)) continue; // masked to -inf for this warp
          const n0 = wgmmaEntryTile(e, consumers) * DEVICE_TILE;
          for (let r = 0; r < DEVICE_TILE; r++) {
            const query = cr * geo.ctaRows + slot * DEVICE_TILE + r;
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

/** Leading steps of tiles all warpgroups use (the kernel's stepsBoth: turns are taken in them). */
export function wgmmaStepsAll(entries: number[], subTiles: number, consumers: WgmmaConsumers = 2): number {
  const all = CLASS_SETS[consumers][0];
  const stepHasAll = (s: number) => entries.slice(s * subTiles, (s + 1) * subTiles)
    .some((e) => wgmmaEntryMask(e, consumers) !== 0 && warpgroupSet(wgmmaEntryMask(e, consumers), consumers) === all);
  let steps = 0;
  while (steps * subTiles < entries.length && stepHasAll(steps)) steps++;
  return steps;
}

/**
 * Pairs of own steps after the leading all-warpgroup ones in a two-consumer CTA's list (warpgroup 0's
 * step, then warpgroup 1's): min(steps of tiles only warpgroup 0 uses, of tiles only warpgroup 1 uses),
 * what the steps kernel packs beside stepsBoth for the OWN_TURNS ablation.
 */
export function wgmmaPairedOwnSteps(entries: number[], subTiles: number): number {
  const stepsOf = [0, 0];
  for (let step = 0; step * subTiles < entries.length; step++) {
    const mask = entries.slice(step * subTiles, (step + 1) * subTiles).reduce((m, e) => m | wgmmaEntryMask(e, 2), 0);
    const set = warpgroupSet(mask, 2);
    if (set === 1 || set === 2) stepsOf[set - 1]++;
  }
  return Math.min(stepsOf[0], stepsOf[1]);
}

/** How many steps each consumer warpgroup computes in one CTA's list (for the benchmark's work model). */
export function wgmmaComputedSteps(entries: number[], subTiles: number, consumers: WgmmaConsumers = 2): number[] {
  const done = new Array<number>(consumers).fill(0);
  for (let step = 0; step * subTiles < entries.length; step++) {
    const ent = entries.slice(step * subTiles, step * subTiles + subTiles);
    for (let wg = 0; wg < consumers; wg++) if (warpgroupComputes(ent, wg, consumers)) done[wg]++;
  }
  return done;
}

/**
 * The work one CTA of `consumers` warpgroups (64 rows = 4 slots each) asks for when its key tiles are
 * grouped by the set of warpgroups that use them (the 2-consumer kernel's grouping, generalised: one
 * class per non-empty warpgroup set, each laid out in its own ceil(size / SUB) steps, so a warpgroup
 * computes exactly the steps of the classes it belongs to).
 *   tiles: the union's key tiles (each gathered once per CTA);
 *   computed: steps each warpgroup computes (for consumers = 2 and 3 equal to wgmmaComputedSteps of
 *     the kernel's own step list, which the host tests check);
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
