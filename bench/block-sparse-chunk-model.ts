/**
 * What 64-row chunks ask of the wgmma block-sparse kernel, against the SPEC's 16 (CPU only, no GPU; the
 * work behind the session-8 prediction in docs/perf.md, block-sparse). One query head of the kernel bench's
 * data sets (q, k uniform in [-1, 1); "shared" adds 0.5 to q), the CPU method's own selection at chunk size
 * c for each target s, and the kernel's own step lists (wgmmaCtaSteps) for the two automatic tilings:
 *   n128: 2 consumer warpgroups (128-row CTAs), 128-key steps (wgmma-n128-s2-kv);
 *   c3:   3 consumer warpgroups (192-row CTAs), 64-key steps (wgmma-c3-n64-s3-kv).
 * Counted per tiling: steps per CTA, the share of (step, warpgroup) pairs computed, computed / attended
 * pairs, K/V bytes gathered per attended pair, and the share of computed warp-steps that are clean (every
 * sub-tile selected by the warp's slot, all left of its first row: what LEAN_MASK skips the mask loop on).
 *
 * Time model (µs per SM; one CTA per SM, so kernel / dense = Σ CTA time / Σ dense CTA time), fitted on
 * session 7's 16K H100 measurements (docs/perf.md, block-sparse "Session 7" and "Session 5"):
 *   dense:  1.75 µs a 128 × 128 step + 3.0 µs a CTA;
 *   n128:   1.03 + 0.525 µs per computing warpgroup a step, + 3.0 µs a CTA (fit over the random s = 0.5 /
 *           0.9 cells: a step ≈ 0.59 + 0.30 per warpgroup in dense steps);
 *   c3:     0.61 + 0.32 µs per computing warpgroup a 64-key step, + 1.4 µs a CTA (session 5's fit at
 *           s ≥ 0.8, 1.4 µs + 1.00 µs a step at ≈ 1.2 warpgroups, and s = 0's 1.20 × dense);
 *   lean:   + LEAN_BRANCH_US a step (the branch around the mask loop: round 1's +1–2% where few warp-steps
 *           are clean) − LEAN_SAVE_US per clean computing warpgroup (s = 0: −6.5% of the attention).
 *           c3's lean numbers are the n128 ones scaled by its per-warpgroup cost (not measured at s = 0).
 * The model ignores L2 misses (the KV-head-major order keeps them small to 64K) and grid tails.
 *
 * Usage: node dist/bench/block-sparse-chunk-model.js [--lengths 16384,65536] [--sparsities 0.5,0.8,0.9,0.95] [--chunks 16,64]
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { packChunkLists, selectionPairCount } from '../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../src/backends/cuda/block-sparse-selection.js';
import {
  type WgmmaConsumers, wgmmaCtaSteps, wgmmaEntryMask, wgmmaEntryTile, wgmmaStepGeometry,
} from '../src/backends/cuda/block-sparse-wgmma-layout.js';
import { BlockSparsePrefill, topChunksForSparsity } from '../src/methods/block-sparse.js';
import { mulberry32 } from './seeded-random.js';

const D = 128;
const KV_BYTES_PER_TILE = 16 * 2 * D * 2;
const DENSE_STEP_US = 1.75, DENSE_CTA_US = 3.0;
const LEAN_BRANCH_US = 0.04, LEAN_SAVE_US = 0.0875;

interface TilingModel { label: string; consumers: WgmmaConsumers; blockN: 64 | 128; stepUs: number; perWarpgroupUs: number; ctaUs: number }
export const MODEL_TILINGS: TilingModel[] = [
  { label: 'n128-s2-kv', consumers: 2, blockN: 128, stepUs: 1.03, perWarpgroupUs: 0.525, ctaUs: 3.0 },
  { label: 'c3-n64-s3-kv', consumers: 3, blockN: 64, stepUs: 0.61, perWarpgroupUs: 0.32, ctaUs: 1.4 },
];

export interface ChunkModelRow {
  n: number; chunk: number; data: 'random' | 'shared'; s: number; t: number; achieved: number;
  tilings: {
    label: string; stepsPerCta: number; warpgroupShare: number; computedPerAttended: number; bytesPerPair: number;
    cleanShare: number; predicted: number; predictedLean: number;
  }[];
}

/** The bench's data set at one head and the CPU method's selection at chunk size c for sparsity s. */
function selection(n: number, chunk: number, data: 'random' | 'shared', s: number) {
  const rand = mulberry32(n * 7 + (data === 'shared' ? 1 : 0));
  const qMean = data === 'shared' ? 0.5 : 0;
  const q = Float32Array.from({ length: n * D }, () => qMean + 2 * rand() - 1);
  const k = Float32Array.from({ length: n * D }, () => 2 * rand() - 1);
  const t = topChunksForSparsity(n, chunk, s);
  const sel = selectBlockSparseChunks(new BlockSparsePrefill(chunk, null, t), q, [k], n, 1, D);
  return { t, lists: packChunkLists(sel), attended: selectionPairCount(sel, 0) };
}

export function chunkModelRow(n: number, chunk: number, data: 'random' | 'shared', s: number): ChunkModelRow {
  const { t, lists, attended } = selection(n, chunk, data, s);
  const achieved = 1 - attended / ((n * (n + 1)) / 2);
  let denseUs = 0;
  for (let cr = 0; cr * 128 < n; cr++) denseUs += DENSE_CTA_US + (cr + 1) * DENSE_STEP_US;
  const tilings = MODEL_TILINGS.map((m) => {
    const geo = wgmmaStepGeometry(n, 1, lists.stride, chunk, m.blockN, m.consumers);
    const sub = geo.subTiles;
    let steps = 0, computed = 0, tiles = 0, warpSteps = 0, cleanWarpSteps = 0, us = 0, leanUs = 0;
    for (let cr = 0; cr < geo.numCtaRows; cr++) {
      const entries = wgmmaCtaSteps(lists, n, geo, 0, cr);
      us += m.ctaUs;
      leanUs += m.ctaUs;
      for (let st = 0; st * sub < entries.length; st++) {
        const step = entries.slice(st * sub, (st + 1) * sub);
        tiles += step.filter((e) => wgmmaEntryMask(e, m.consumers) !== 0).length;
        let wgs = 0, cleanWgs = 0;
        for (let wg = 0; wg < m.consumers; wg++) {
          const slotsOf = (e: number) => (wgmmaEntryMask(e, m.consumers) >>> (4 * wg)) & 0xf;
          if (!step.some((e) => slotsOf(e) !== 0)) continue;
          wgs++;
          let clean = 0;
          for (let w = 0; w < 4; w++) {
            const firstRow = cr * geo.ctaRows + 64 * wg + 16 * w;
            const whole = step.every((e) => ((slotsOf(e) >>> w) & 1) === 1 && wgmmaEntryTile(e, m.consumers) * 16 + 15 <= firstRow && wgmmaEntryTile(e, m.consumers) * 16 + 16 <= n);
            if (whole) clean++;
          }
          warpSteps += 4;
          cleanWarpSteps += clean;
          cleanWgs += clean / 4;
        }
        steps++;
        computed += wgs;
        const stepUs = m.stepUs + m.perWarpgroupUs * wgs;
        const scale = m.perWarpgroupUs / MODEL_TILINGS[0].perWarpgroupUs;
        us += stepUs;
        leanUs += stepUs + scale * (LEAN_BRANCH_US - LEAN_SAVE_US * cleanWgs);
      }
    }
    const ideal = (1 - achieved) * denseUs;
    return {
      label: m.label, stepsPerCta: steps / geo.numCtaRows, warpgroupShare: computed / (steps * m.consumers),
      computedPerAttended: (computed * 64 * m.blockN) / attended, bytesPerPair: (tiles * KV_BYTES_PER_TILE) / attended,
      cleanShare: warpSteps > 0 ? cleanWarpSteps / warpSteps : 0, predicted: us / ideal, predictedLean: leanUs / ideal,
    };
  });
  return { n, chunk, data, s, t, achieved, tilings };
}

function main(argv: string[]): void {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: { lengths: { type: 'string', default: '16384,65536' }, sparsities: { type: 'string', default: '0.5,0.8,0.9,0.95' }, chunks: { type: 'string', default: '16,64' } },
  });
  const list = (s: string, what: string) => s.split(',').map((x) => {
    const v = Number(x);
    if (x.trim() === '' || !Number.isFinite(v)) throw new Error(`--${what}: bad value "${x}"`);
    return v;
  });
  console.log('| n | c | data | s | t | achieved | tiling | steps/CTA | wg share | computed/attended | B/pair | clean warp-steps | predicted / ideal | with -lm |');
  console.log('| ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const n of list(values.lengths, 'lengths')) {
    for (const data of ['random', 'shared'] as const) {
      for (const s of list(values.sparsities, 'sparsities')) {
        for (const chunk of list(values.chunks, 'chunks')) {
          const r = chunkModelRow(n, chunk, data, s);
          for (const x of r.tilings) {
            console.log(`| ${n} | ${chunk} | ${data} | ${s} | ${r.t} | ${r.achieved.toFixed(3)} | ${x.label} | ${x.stepsPerCta.toFixed(1)} | ${x.warpgroupShare.toFixed(2)} | ` +
              `${x.computedPerAttended.toFixed(2)} | ${x.bytesPerPair.toFixed(1)} | ${x.cleanShare.toFixed(2)} | ${x.predicted.toFixed(2)} | ${x.predictedLean.toFixed(2)} |`);
          }
        }
      }
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main(process.argv.slice(2));
