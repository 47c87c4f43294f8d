/**
 * How the wgmma block-sparse kernel's work items spread over the SMs under three schedules (CPU only, no
 * GPU; docs/perf.md, block-sparse "Session 10"): the bench's 192-row tiling (c3, 64-key steps) at H = 32,
 * Hkv = 8, items (CTA row, head) in the KV-head-major launch order (each KV head's rows longest first).
 *   hardware    one CTA per item; a freed SM takes the next item in launch order (the block scheduler),
 *               and each item pays its whole fixed cost (CTA start, Q load, output store);
 *   static      persistent CTAs, item j on CTA j mod SMs (session 9's `-ps`), a share `overlap` of the
 *               fixed cost hidden under the neighbouring items' steps;
 *   dynamic     persistent CTAs drawing items from a ticket in launch order (`-ps-wc`), same overlap.
 * An item costs fixed + perStep · steps, its steps counted from synthetic lists the way the steps kernel
 * groups them (the tiles of each set of warpgroups in ceil(size / 4)-step classes). perStep is fitted so
 * that the hardware schedule's makespan equals a measured attention time of the cell (--measured, ms), so
 * the model predicts the two persistent schedules' change against it, which is what the bench measures.
 * Lists: random (each query chunk draws its t − 3 unforced chunks uniformly: the bench's random set) or
 * shared (one ranking of key chunks for the whole head: every chunk takes the highest-ranked ones it may,
 * the bench's heavy-hitter set at its limit).
 *
 * Usage: node dist/bench/block-sparse-persistent-model.js [--lengths 16384,65536] [--sparsities 0,0.5,0.9,0.95]
 *          [--chunk 16] [--fixed-us 8.4] [--overlaps 0.5,0.8] (--help: PERSISTENT_MODEL_ARGS below)
 */
import { type BenchOptionsOf, defineBenchArgs, int, intList, num, numList, sparsityList } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { mulberry32 } from './seeded-random.js';
import { randomChunkList } from './block-sparse-l2-model.js';
import { wgmmaCtaOfLaunch } from '../src/backends/cuda/block-sparse-wgmma-layout.js';
import { topChunksForSparsity } from '../src/methods/block-sparse.js';

const H = 32, HKV = 8, TILE = 16, SLOTS = 12, SUB = 4, SMS = 132;
/** The tiling's warpgroup sets in class order (the kernel's class_of at three consumers). */
const CLASS_SETS = [0b111, 0b011, 0b101, 0b110, 0b001, 0b010, 0b100];

export type ListKind = 'random' | 'shared';

/**
 * Chunk list of query chunk m (t of them when t ≤ m): 'random' as randomChunkList; 'shared' the forced
 * chunks 0, m − 1, m and then the best-ranked others of 1 .. m − 2 by `rank` (lower is better).
 */
function chunkList(kind: ListKind, m: number, t: number, rand: () => number, scratch: Int32Array, rankOrder: Int32Array, out: number[]): void {
  if (kind === 'random' || t >= m + 1) {
    randomChunkList(m, t, rand, scratch, out);
    return;
  }
  out.length = 0;
  out.push(0, m - 1, m);
  for (let i = 0; i < rankOrder.length && out.length < t; i++) {
    const j = rankOrder[i];
    if (j >= 1 && j <= m - 2) out.push(j);
  }
}

/**
 * Steps of the item (head h, CTA row cr): the union of its 12 slots' key tiles (causal: a tile right of
 * the slot's own is dropped), grouped by the set of warpgroups using each tile, each class in
 * ceil(size / SUB) steps. `chunk` is the list grain (16 or 64 rows); a c = 64 chunk spans four tiles.
 */
export function itemSteps(
  kind: ListKind, h: number, cr: number, n: number, chunk: number, t: number, seed: number, scratch: Int32Array, rankOrder: Int32Array, masks: Uint16Array,
): number {
  const f = chunk / TILE;
  const numTiles = Math.ceil(n / TILE);
  const touched: number[] = [];
  const list: number[] = [];
  let lastChunk = -1;
  for (let slot = 0; slot < SLOTS; slot++) {
    const qt = cr * SLOTS + slot;
    if (qt >= numTiles) break;
    const m = Math.floor(qt / f);
    if (m !== lastChunk) {
      chunkList(kind, m, t, mulberry32(seed ^ (h * 1_000_003 + m * 7919)), scratch, rankOrder, list);
      lastChunk = m;
    }
    for (const j of list) {
      for (let u = 0; u < f; u++) {
        const kt = j * f + u;
        if (kt > qt) continue;
        if (masks[kt] === 0) touched.push(kt);
        masks[kt] |= 1 << slot;
      }
    }
  }
  const sizes = new Array<number>(CLASS_SETS.length).fill(0);
  for (const kt of touched) {
    let set = 0;
    for (let w = 0; w < 3; w++) if ((masks[kt] >> (4 * w)) & 0xf) set |= 1 << w;
    sizes[CLASS_SETS.indexOf(set)]++;
    masks[kt] = 0;
  }
  return sizes.reduce((a, size) => a + Math.ceil(size / SUB), 0);
}

/** Steps of every item of the launch, in launch order (KV-head-major). */
export function launchItemSteps(kind: ListKind, n: number, chunk: number, s: number): number[] {
  const t = topChunksForSparsity(n, chunk, s);
  const numTiles = Math.ceil(n / TILE);
  const numChunks = Math.ceil(n / chunk);
  const numCtaRows = Math.ceil(numTiles / SLOTS);
  const scratch = Int32Array.from({ length: numChunks }, (_, i) => i);
  const masks = new Uint16Array(numTiles);
  const seed = n * 31 + Math.round(s * 1000) + chunk;
  const out: number[] = [];
  const rankOf: Int32Array[] = [];
  for (let h = 0; h < H; h++) {
    // shared: one ranking of the key chunks per head (a random permutation)
    const rank = Int32Array.from({ length: numChunks }, (_, i) => i);
    const rand = mulberry32(seed * 17 + h);
    for (let i = numChunks - 1; i > 0; i--) {
      const r = Math.floor(rand() * (i + 1));
      const x = rank[i];
      rank[i] = rank[r];
      rank[r] = x;
    }
    rankOf.push(rank);
  }
  for (let i = 0; i < numCtaRows * H; i++) {
    const { cr, h } = wgmmaCtaOfLaunch('kv', i, numCtaRows, H, HKV);
    out.push(itemSteps(kind, h, cr, n, chunk, t, seed, scratch, rankOf[h], masks));
  }
  return out;
}

/** Makespan (µs) of items of costs `cost` (µs, launch order) on `sms` SMs: greedy in order, or item j on SM j mod sms. */
export function makespan(cost: readonly number[], sms: number, rule: 'greedy' | 'round-robin'): number {
  if (!(Number.isInteger(sms) && sms >= 1)) throw new Error(`makespan: sms must be a positive integer (got ${sms})`);
  const busy = new Float64Array(sms);
  if (rule === 'round-robin') {
    cost.forEach((c, j) => { busy[j % sms] += c; });
    return Math.max(...busy);
  }
  // Greedy: the SM free first takes the next item (ties to the lowest index): a linear scan is fast enough here.
  for (const c of cost) {
    let k = 0;
    for (let i = 1; i < sms; i++) if (busy[i] < busy[k]) k = i;
    busy[k] += c;
  }
  return Math.max(...busy);
}

export interface PersistentModelCell {
  n: number; s: number; kind: ListKind; items: number; meanSteps: number; maxSteps: number;
  perStepUs: number; overlap: number; staticChange: number; dynamicChange: number;
}

/**
 * One cell: per-step time fitted to `measuredMs` under the hardware schedule (fixed cost `fixedUs` an item),
 * then the persistent schedules' makespans with `overlap` of the fixed cost hidden, as changes against it.
 */
export function persistentModelCell(kind: ListKind, n: number, chunk: number, s: number, measuredMs: number, fixedUs: number, overlaps: number[]): PersistentModelCell[] {
  if (!(measuredMs > 0)) throw new Error(`persistentModelCell: measuredMs must be positive (got ${measuredMs})`);
  const steps = launchItemSteps(kind, n, chunk, s);
  const hardware = (perStep: number) => makespan(steps.map((x) => fixedUs + perStep * x), SMS, 'greedy');
  // The makespan grows with perStep: bisect for the measured time.
  let lo = 0, hi = 1;
  while (hardware(hi) < measuredMs * 1e3) hi *= 2;
  for (let i = 0; i < 40; i++) {
    const mid = (lo + hi) / 2;
    if (hardware(mid) < measuredMs * 1e3) lo = mid;
    else hi = mid;
  }
  const perStep = (lo + hi) / 2;
  const base = hardware(perStep);
  return overlaps.map((overlap) => {
    const cost = steps.map((x) => fixedUs * (1 - overlap) + perStep * x);
    return {
      n, s, kind, items: steps.length, meanSteps: steps.reduce((a, b) => a + b, 0) / steps.length, maxSteps: Math.max(...steps),
      perStepUs: perStep, overlap,
      staticChange: makespan(cost, SMS, 'round-robin') / base - 1, dynamicChange: makespan(cost, SMS, 'greedy') / base - 1,
    };
  });
}

/** The command line (`--help` prints it). */
export const PERSISTENT_MODEL_ARGS = defineBenchArgs('block-sparse-persistent-model', 'Persistent block-sparse CTAs: static round-robin against a work counter, by a makespan model (CPU only).', {
  lengths: intList({ describe: 'prompt lengths', default: [16384, 65536], atLeast: 192, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0, 0.5, 0.9, 0.95] }),
  chunk: int({ describe: 'list chunk rows', placeholder: 'C', default: 16, oneOf: [16, 64], noun: 'chunk size' }),
  'fixed-us': num({ describe: 'fixed cost of an item (µs; session 9: 0.176 ms of empty lists over 20.85 CTA waves at 16K)', default: 8.4, above: 0, noun: 'cost' }),
  overlaps: numList({ describe: 'shares of the fixed cost a persistent CTA hides (negative: it adds)', default: [0.5, 0.8], above: -1, atMost: 1, noun: 'share' }),
  measured: numList({ describe: 'measured attention ms of the cells, lengths x sparsities x (random, shared) in that order (default: 1 for all: only the step shape)', default: [], above: 0, noun: 'time' }),
}, 'node dist/bench/block-sparse-persistent-model.js');

export type PersistentModelOptions = BenchOptionsOf<typeof PERSISTENT_MODEL_ARGS.table>;

function main(argv: string[]): void {
  const o = PERSISTENT_MODEL_ARGS.parse(argv);
  const cells = o.lengths.length * o.sparsities.length * 2;
  if (o.measured.length !== 0 && o.measured.length !== cells) throw new Error(`--measured: ${cells} times needed (lengths x sparsities x 2 data sets), got ${o.measured.length}`);
  console.log(`# c3 (192-row CTAs, 64-key steps), H = ${H}, Hkv = ${HKV}, c = ${o.chunk}, ${SMS} SMs, KV-head-major launch order; fixed ${o.fixedUs} µs an item`);
  console.log('| n | s | lists | items | steps mean / max | µs a step | overlap | static vs hardware | dynamic vs hardware |');
  console.log('| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  let k = 0;
  for (const n of o.lengths) {
    for (const s of o.sparsities) {
      for (const kind of ['random', 'shared'] as const) {
        const measured = o.measured.length > 0 ? o.measured[k] : 1;
        k++;
        for (const c of persistentModelCell(kind, n, o.chunk, s, measured, o.fixedUs, o.overlaps)) {
          const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
          console.log(`| ${n} | ${s} | ${kind} | ${c.items} | ${c.meanSteps.toFixed(1)} / ${c.maxSteps} | ${c.perStepUs.toFixed(3)} | ${c.overlap} | ${pct(c.staticChange)} | ${pct(c.dynamicChange)} |`);
        }
      }
    }
  }
}

runIfDirect(import.meta.url, main);
