/**
 * Where the wgmma block-sparse kernel's K/V gather is served from, by CTA order (CPU only, no GPU;
 * docs/perf.md, "Session 5"). The bench's "random" data set at all 32 query heads (8 KV heads): q and k
 * i.i.d. uniform, so every query chunk's top-t key chunks are a uniformly random set of its candidates
 * (the pooled scores are i.i.d.) plus the forced chunks 0, m − 1 and m: this model draws them directly
 * instead of running the CPU method on every head (what the CPU method would select differs, the
 * statistics the L2 sees do not). For each CTA order it replays the kernel's schedule on 132 SMs, one
 * CTA per SM (the kernel's shared memory allows one), each SM gathering one step of its CTA's step list
 * per tick (so a CTA lasts as many ticks as it has steps: the bytes-bound regime this model is for),
 * a freed SM taking the next CTA in launch order (the hardware's in-order dispatch), and counts the
 * step gathers an LRU cache of the L2's size would miss (K + V of a 16-key tile, 8 KB at D = 128, per
 * entry; the H100's 50 MB L2 is two 25 MB partitions, hence the second size).
 *   heads: today's order (prefill_block_coords<1>): longest-first row blocks, all 32 heads of a row
 *          block in a row, so the 132 resident CTAs span ~4 row blocks of all 8 KV heads;
 *   kv:    KV-head-major (the variant `-kv`): one KV head's CTAs (its 4 query heads × every row block,
 *          longest-first) before the next one's, so the resident CTAs read one KV head's K/V.
 * Printed per cell: steps and tile gathers per CTA, warpgroups computing a step on average (2 or 3
 * when every step is one all warpgroups use, 1 when each is one warpgroup's own), the share of tile
 * gathers the LRU misses (HBM traffic / L2 traffic), and the schedule's tail (makespan over the
 * perfectly balanced one).
 *
 * Usage: node dist/bench/block-sparse-l2-model.js [--lengths 16384,32768,65536,131072]
 *          [--sparsities 0.8,0.9,0.95] [--l2-mb 50,25] [--tilings n128,c3] (--help: L2_MODEL_ARGS below)
 */
import { type BenchOptionsOf, defineBenchArgs, intList, labels, numList, sparsityList } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { mulberry32 } from './seeded-random.js';
import { type WgmmaCtaOrder, wgmmaCtaOfLaunch } from '../src/backends/cuda/block-sparse-wgmma-layout.js';
import { topChunksForSparsity } from '../src/methods/block-sparse.js';

const H = 32, HKV = 8, C = 16, SMS = 132;
const TILE_KV_BYTES = 16 * 2 * 128 * 2; // K and V of a 16-key tile, bf16, D = 128

export interface ModelTiling { label: string; consumers: 2 | 3; subTiles: number }
export const MODEL_TILINGS: Record<string, ModelTiling> = {
  n128: { label: 'n128-s2', consumers: 2, subTiles: 8 },
  n64: { label: 'n64-s3', consumers: 2, subTiles: 4 },
  c3: { label: 'c3-n64-s3', consumers: 3, subTiles: 4 },
};

/**
 * One query chunk's synthetic random selection: every chunk 0..m when t ≥ m + 1, else 0, m − 1, m and
 * t − 3 distinct uniformly drawn from 1..m − 2 (partial Fisher–Yates over `scratch`, restored after).
 */
export function randomChunkList(m: number, t: number, rand: () => number, scratch: Int32Array, out: number[]): void {
  out.length = 0;
  if (t >= m + 1) {
    for (let j = 0; j <= m; j++) out.push(j);
    return;
  }
  out.push(0, m - 1, m);
  const pool = m - 2; // candidates 1 .. m − 2 at scratch[0 .. pool)
  const swaps: number[] = [];
  for (let i = 0; i < t - 3; i++) {
    const r = i + Math.floor(rand() * (pool - i));
    out.push(scratch[r] + 1);
    swaps.push(r);
    const x = scratch[i];
    scratch[i] = scratch[r];
    scratch[r] = x;
  }
  for (let i = swaps.length - 1; i >= 0; i--) { // undo, so scratch stays the identity
    const r = swaps[i], x = scratch[i];
    scratch[i] = scratch[r];
    scratch[r] = x;
  }
}

/**
 * The key tiles of one CTA as gathered, step by step (each step SUB tiles, padding left out): its
 * slots' tiles grouped by the set of warpgroups using them, classes in the kernel's tier order (all
 * warpgroups, then pairs, then singles), each ascending. The kernel interleaves a tier's classes
 * round-robin; the L2 does not care, so this keeps each class's steps together.
 */
function ctaSteps(
  h: number, cr: number, n: number, t: number, tiling: ModelTiling, seed: number, scratch: Int32Array, masks: Uint16Array,
): { steps: number[][]; warpgroupSteps: number } {
  const slots = 4 * tiling.consumers;
  const numTiles = Math.ceil(n / C);
  const touched: number[] = [];
  const list: number[] = [];
  for (let slot = 0; slot < slots; slot++) {
    const m = cr * slots + slot;
    if (m >= numTiles) break;
    randomChunkList(m, t, mulberry32(seed ^ (h * 1_000_003 + m * 7919)), scratch, list);
    for (const j of list) {
      if (masks[j] === 0) touched.push(j);
      masks[j] |= 1 << slot;
    }
  }
  touched.sort((a, b) => a - b);
  const sets = tiling.consumers === 2 ? [0b11, 0b01, 0b10] : [0b111, 0b011, 0b101, 0b110, 0b001, 0b010, 0b100];
  const classes: number[][] = sets.map(() => []);
  for (const j of touched) {
    let set = 0;
    for (let w = 0; w < tiling.consumers; w++) if ((masks[j] >> (4 * w)) & 0xf) set |= 1 << w;
    classes[sets.indexOf(set)].push(j);
    masks[j] = 0;
  }
  const steps: number[][] = [];
  let warpgroupSteps = 0;
  classes.forEach((cls, c) => {
    for (let i = 0; i < cls.length; i += tiling.subTiles) steps.push(cls.slice(i, i + tiling.subTiles));
    let members = 0;
    for (let w = 0; w < tiling.consumers; w++) members += (sets[c] >> w) & 1;
    warpgroupSteps += members * Math.ceil(cls.length / tiling.subTiles);
  });
  return { steps, warpgroupSteps };
}

/** An LRU set of fixed capacity (Map keeps insertion order: re-inserting on a hit moves a key last). */
class LruSet {
  private readonly keys = new Map<number, true>();
  constructor(private readonly capacity: number) {}
  /** Touches key; true when it was present (a hit). */
  touch(key: number): boolean {
    const hit = this.keys.delete(key);
    this.keys.set(key, true);
    if (!hit && this.keys.size > this.capacity) this.keys.delete(this.keys.keys().next().value as number);
    return hit;
  }
}

export interface L2ModelCell {
  n: number; s: number; t: number; tiling: string; order: WgmmaCtaOrder; l2Mb: number;
  ctas: number; tilesPerCta: number; stepsPerCta: number; warpgroupsPerStep: number; missShare: number; tail: number;
}

/** Replays one (n, s, tiling, order) cell for each L2 size (one schedule, several caches side by side). */
export function simulateL2(n: number, s: number, tiling: ModelTiling, order: WgmmaCtaOrder, l2MbList: number[]): L2ModelCell[] {
  const t = topChunksForSparsity(n, C, s);
  const numTiles = Math.ceil(n / C);
  const numCtaRows = Math.ceil(numTiles / (4 * tiling.consumers));
  const ctas = numCtaRows * H;
  const scratch = Int32Array.from({ length: numTiles }, (_, i) => i);
  const masks = new Uint16Array(numTiles);
  const caches = l2MbList.map((mb) => new LruSet(Math.floor((mb * 1024 * 1024) / TILE_KV_BYTES)));
  const misses = new Array<number>(l2MbList.length).fill(0);
  const seed = n * 31 + Math.round(s * 1000);
  const sm: { steps: number[][]; pos: number; hk: number }[] = [];
  let next = 0, ticks = 0, totalSteps = 0, totalTiles = 0, totalWarpgroupSteps = 0;
  const take = (): { steps: number[][]; pos: number; hk: number } | null => {
    if (next >= ctas) return null;
    const { cr, h } = wgmmaCtaOfLaunch(order, next++, numCtaRows, H, HKV);
    const { steps, warpgroupSteps } = ctaSteps(h, cr, n, t, tiling, seed, scratch, masks);
    totalSteps += steps.length;
    totalWarpgroupSteps += warpgroupSteps;
    for (const st of steps) totalTiles += st.length;
    return { steps, pos: 0, hk: Math.floor(h / (H / HKV)) };
  };
  for (let i = 0; i < SMS; i++) {
    const c = take();
    if (c) sm.push(c);
  }
  while (sm.length > 0) {
    ticks++;
    for (let i = 0; i < sm.length; i++) {
      const c = sm[i];
      for (const tile of c.steps[c.pos]) {
        const key = c.hk * numTiles + tile;
        caches.forEach((cache, k) => { if (!cache.touch(key)) misses[k]++; });
      }
      if (++c.pos >= c.steps.length) {
        const nextCta = take();
        if (nextCta) sm[i] = nextCta;
        else { sm.splice(i, 1); i--; }
      }
    }
  }
  return l2MbList.map((l2Mb, k) => ({
    n, s, t, tiling: tiling.label, order, l2Mb, ctas,
    tilesPerCta: totalTiles / ctas, stepsPerCta: totalSteps / ctas, warpgroupsPerStep: totalWarpgroupSteps / totalSteps,
    missShare: misses[k] / totalTiles, tail: ticks / (totalSteps / SMS),
  }));
}

/** The command line (`--help` prints it). */
export const L2_MODEL_ARGS = defineBenchArgs('block-sparse-l2-model', 'Where the wgmma block-sparse kernel\'s K/V gather is served from, by CTA order (an LRU model of the L2; CPU only).', {
  lengths: intList({ describe: 'prompt lengths', default: [16384, 32768, 65536, 131072], atLeast: C, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.8, 0.9, 0.95] }),
  'l2-mb': numList({ describe: 'L2 sizes modelled side by side (MB)', default: [50, 25], above: 0, noun: 'size in MB' }),
  tilings: labels({ describe: 'kernel tilings', choices: Object.keys(MODEL_TILINGS), default: ['n128', 'c3'] }),
}, 'node dist/bench/block-sparse-l2-model.js');

export type L2ModelOptions = BenchOptionsOf<typeof L2_MODEL_ARGS.table>;

export function parseL2ModelArgs(argv: string[]): L2ModelOptions {
  return L2_MODEL_ARGS.parse(argv);
}

function main(argv: string[]): void {
  const { lengths, sparsities, l2Mb, tilings } = parseL2ModelArgs(argv);
  console.log(`# random selections, H = ${H}, Hkv = ${HKV}, c = ${C}, ${SMS} SMs, one CTA per SM, a step per tick; LRU over 8 KB K+V tiles`);
  console.log(`| n | s | t | tiling | order | CTAs | steps / CTA | tiles / CTA | warpgroups / step | ${l2Mb.map((mb) => `miss share (${mb} MB)`).join(' | ')} | tail |`);
  console.log(`| ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |${l2Mb.map(() => ' ---: |').join('')} ---: |`);
  for (const n of lengths) {
    for (const s of sparsities) {
      for (const name of tilings) {
        for (const order of ['heads', 'kv'] as const) {
          const cells = simulateL2(n, s, MODEL_TILINGS[name], order, l2Mb);
          const c = cells[0];
          console.log(`| ${n} | ${s} | ${c.t} | ${c.tiling} | ${order} | ${c.ctas} | ${c.stepsPerCta.toFixed(1)} | ${c.tilesPerCta.toFixed(1)} | ${c.warpgroupsPerStep.toFixed(2)} | ` +
            `${cells.map((x) => x.missShare.toFixed(3)).join(' | ')} | ${c.tail.toFixed(3)} |`);
        }
      }
    }
  }
}

runIfDirect(import.meta.url, main);
