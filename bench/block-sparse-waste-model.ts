/**
 * Where the computed-but-not-attended work of the wgmma block-sparse kernel comes from (CPU only): the
 * bench's data sets at one query head (bench/block-sparse-wgmma-model.ts's modelSelection, the CPU
 * method's own selection), the kernel's step lists (wgmmaCtaSteps), and every 16-row × 16-key block a
 * warpgroup computes (its 4 slots × each entry of each step it computes) sorted into:
 *   attended  the pairs the slot keeps (selected tile, causal part);
 *   diagonal  a selected tile's pairs right of the query (the slot's own diagonal tile: 120 of 256);
 *   padding   entry 0 closing a class's last step (nothing selected it);
 *   future    a tile right of the slot's diagonal (a later slot's own or neighbouring chunk);
 *   local     an unselected tile at or left of the diagonal, no further back than the chunk before the
 *             warpgroup's first slot (the neighbours' forced chunks m − 1 / m);
 *   far       an unselected tile further back: the slots' selections disagree (what the 64-row product
 *             costs where 16-row chunks choose on their own).
 * computed / attended = 1 + (diagonal + padding + future + local + far) / attended, per tiling, so each
 * category's term says how much of the factor it costs.
 *
 * Usage: node dist/bench/block-sparse-waste-model.js [--lengths 16384] [--sparsities 0.5,0.8,0.9,0.95]
 */
import type { ChunkLists } from '../src/backends/cuda/block-sparse-layout.js';
import { type WgmmaConsumers, wgmmaCtaSteps, wgmmaEntryMask, wgmmaEntryTile, wgmmaStepGeometry } from '../src/backends/cuda/block-sparse-wgmma-layout.js';
import { type BenchOptionsOf, defineBenchArgs, intList, sparsityList } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { modelSelection } from './block-sparse-wgmma-model.js';

const TILE = 16;
export const WASTE_CATEGORIES = ['diagonal', 'padding', 'future', 'local', 'far'] as const;
export type WasteCategory = (typeof WASTE_CATEGORIES)[number];

export interface WasteCount { attended: number; computed: number; waste: Record<WasteCategory, number> }

/** Pairs of query tile qt (rows qt·16 .. +15, below T) and key tile kt (keys below kvLen) with key ≤ query. */
function causalPairs(qt: number, kt: number, T: number, kvLen: number): number {
  let pairs = 0;
  for (let r = 0; r < TILE; r++) {
    const q = qt * TILE + r;
    if (q >= T) break;
    const lastKey = Math.min(q, kvLen - 1, kt * TILE + TILE - 1);
    if (lastKey >= kt * TILE) pairs += lastKey - kt * TILE + 1;
  }
  return pairs;
}

/** Sorts every computed 16 × 16 block of one head's CTAs (chunk size 16: chunk = tile) into the categories above. */
export function wasteOfLists(lists: ChunkLists, n: number, blockN: 64 | 128, consumers: WgmmaConsumers): WasteCount {
  if (lists.chunkSize !== TILE) throw new Error(`wasteOfLists: chunk size ${lists.chunkSize}, the model sorts 16-token chunks`);
  const geo = wgmmaStepGeometry(n, 1, lists.stride, lists.chunkSize, blockN, consumers);
  const waste: Record<WasteCategory, number> = { diagonal: 0, padding: 0, future: 0, local: 0, far: 0 };
  let attended = 0, computed = 0;
  for (let cr = 0; cr < geo.numCtaRows; cr++) {
    const entries = wgmmaCtaSteps(lists, n, geo, 0, cr);
    for (let step = 0; step * geo.subTiles < entries.length; step++) {
      const ent = entries.slice(step * geo.subTiles, (step + 1) * geo.subTiles);
      for (let wg = 0; wg < consumers; wg++) {
        if (!ent.some((e) => (wgmmaEntryMask(e, consumers) >>> (4 * wg)) & 0xf)) continue; // skipped
        const firstTile = cr * geo.slots + 4 * wg;
        for (const e of ent) {
          const mask = wgmmaEntryMask(e, consumers), kt = wgmmaEntryTile(e, consumers);
          for (let l = 0; l < 4; l++) {
            const qt = firstTile + l;
            const rows = Math.max(0, Math.min(TILE, n - qt * TILE));
            if (rows === 0) continue; // rows past the prompt: computed on zero-filled Q, never stored
            const block = rows * TILE;
            computed += block;
            if (mask === 0) { waste.padding += block; continue; }
            if ((mask >>> (4 * wg + l)) & 1) {
              const kept = causalPairs(qt, kt, n, n);
              attended += kept;
              waste.diagonal += block - kept;
            } else if (kt > qt) waste.future += block;
            else if (kt >= firstTile - 1) waste.local += block;
            else waste.far += block;
          }
        }
      }
    }
  }
  return { attended, computed, waste };
}

/** The command line (`--help` prints it). */
export const WASTE_MODEL_ARGS = defineBenchArgs('block-sparse-waste-model', 'Where the wgmma block-sparse kernel\'s computed-but-not-attended work comes from (CPU only).', {
  lengths: intList({ describe: 'prompt lengths', default: [16384], atLeast: TILE, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.5, 0.8, 0.9, 0.95] }),
}, 'node dist/bench/block-sparse-waste-model.js');

export type WasteModelOptions = BenchOptionsOf<typeof WASTE_MODEL_ARGS.table>;

export function parseWasteModelArgs(argv: string[]): WasteModelOptions {
  return WASTE_MODEL_ARGS.parse(argv);
}

function main(argv: string[]): void {
  const { lengths, sparsities } = parseWasteModelArgs(argv);
  const tilings = [{ blockN: 128, consumers: 2 }, { blockN: 64, consumers: 2 }, { blockN: 64, consumers: 3 }] as const;
  console.log('# one query head, D = 128, c = 16; computed / attended = 1 + the categories (each: its computed blocks not attended / attended pairs)');
  console.log(`| n | data | s | t | tiling | computed / attended | ${WASTE_CATEGORIES.join(' | ')} |`);
  console.log(`| ---: | --- | ---: | ---: | --- | ---: |${WASTE_CATEGORIES.map(() => ' ---: |').join('')}`);
  for (const n of lengths) {
    for (const data of ['shared', 'random'] as const) {
      for (const s of sparsities) {
        const { t, lists, attended } = modelSelection(n, data, s);
        for (const { blockN, consumers } of tilings) {
          const w = wasteOfLists(lists, n, blockN, consumers);
          if (w.attended !== attended) throw new Error(`the step lists attend ${w.attended} pairs, the selection ${attended}`);
          const terms = WASTE_CATEGORIES.map((c) => (w.waste[c] / attended).toFixed(3));
          console.log(`| ${n} | ${data} | ${s} | ${t} | ${consumers === 2 ? '' : `c${consumers}-`}n${blockN} | ${(w.computed / attended).toFixed(3)} | ${terms.join(' | ')} |`);
        }
      }
    }
  }
}

runIfDirect(import.meta.url, main);
