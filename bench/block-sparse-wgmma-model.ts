/**
 * The work model behind docs/perf.md's prediction for the wgmma block-sparse kernel (CPU only, no GPU):
 * the bench's two data sets (q, k uniform in [-1, 1); "shared" adds 0.5 to q) at one query head, the
 * CPU method's own selection for each target sparsity, and what each kernel's index asks of it:
 *   mma.sync h1m1 (64-row CTAs): union tiles per CTA → K/V bytes per attended pair;
 *   wgmma (128-row CTAs, 64- or 128-key steps): union tiles → bytes per attended pair; steps each
 *     consumer warpgroup computes → computed 64-row × 16-key blocks per attended one (the tensor-core
 *     work over the ideal's), and the share of computed steps with no partner step to overlap with
 *     (a tail of one warpgroup's own steps, where its softmax leaves the tensor cores idle).
 * Every quantity is counted from the step lists the kernels' host references build, so the device's
 * work line (bench/block-sparse.ts) must print the same numbers for its own data.
 *
 * Prediction (kernel / ideal, the ideal (1 − s)·dense with the dense wgmma kernel): the larger of
 *   bytes   bytes per attended pair / L2_FEED × dense pair rate: the K/V gather must come through L2 at
 *           no more than the mma.sync kernel's random rows reach (4.0–4.4 TB/s from their own bytes
 *           per pair and times, docs/perf.md; dense wgmma itself pulls ≈ 4.8 TB/s at 16K, the upper end);
 *   compute computed / attended blocks / STEP_EFFICIENCY (64-key steps ran 0.89 of 128-key ones in
 *           dense v3), plus the unpaired share at dense v1's no-overlap rate (440 / 620).
 *
 * Larger CTAs (--rows 128,192,256: 2, 3 or 4 consumer warpgroups of 64 rows; 192 is built as the
 * kernel's `consumers: 3` variant, 256 is not) are counted the same way from the slots' tile masks with the grouping generalised to one class per set
 * of warpgroups (groupedCtaWork; at 128 rows it equals the kernel's own step lists), and predicted by
 * the same rule, which assumes the larger CTA keeps the 128-row kernel's per-step efficiency (its
 * consumers would run on fewer registers: see docs/perf.md).
 *
 * Usage: node dist/bench/block-sparse-wgmma-model.js [--lengths 16384,65536] [--sparsities 0.5,0.8,0.9,0.95]
 *          [--rows 128,192,256]   (--rows prints the rows-per-CTA table instead of the kernel-variant one)
 */
import { type BenchOptionsOf, defineBenchArgs, intList, sparsityList } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { mulberry32 } from './seeded-random.js';
import { ctaGeometry, ctaUnion, packChunkLists, selectionPairCount } from '../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../src/backends/cuda/block-sparse-selection.js';
import {
  WGMMA_CTA_SLOTS, ctaTileMasksForSlots, groupedCtaWork, wgmmaComputedSteps, wgmmaCtaSteps, wgmmaEntryMask, wgmmaStepGeometry, wgmmaStepsAll,
} from '../src/backends/cuda/block-sparse-wgmma-layout.js';
import { BlockSparsePrefill, topChunksForSparsity } from '../src/methods/block-sparse.js';

const D = 128, C = 16;
const KV_BYTES_PER_TILE = 16 * 2 * D * 2; // 16 keys of K and V, bf16
/** Dense wgmma v3 + warp arrivals (docs/perf.md, Prefill latest run): TFLOP/s at 16K / 64K. */
const DENSE_TFLOPS: Record<number, number> = { 16384: 621, 32768: 574, 65536: 582, 131072: 582 };
const L2_FEED_TBPS = [4.3, 4.8]; // pessimistic (mma.sync random rows), optimistic (dense wgmma's own pull)
const STEP_EFFICIENCY: Record<number, number> = { 64: 0.89, 128: 1 };
const NO_OVERLAP_RATE = 440 / 620;

/** Predicted kernel / ideal: [low, high] over the L2 feed range, and which bound sets it. */
export function predictedRatio(n: number, w: WorkModelRow['wgmma'][number]): { low: number; high: number; bound: 'bytes' | 'compute' } {
  const tflops = DENSE_TFLOPS[n] ?? 582;
  const pairsPerSecond = (tflops * 1e12) / (4 * D); // dense attended pairs per second (4·D FLOPs a pair)
  const compute = (w.computedPerAttended / STEP_EFFICIENCY[w.blockN]) * (1 - w.unpairedShare + w.unpairedShare / NO_OVERLAP_RATE);
  const bytes = L2_FEED_TBPS.map((bw) => (w.bytesPerPair * pairsPerSecond) / (bw * 1e12));
  const low = Math.max(compute, bytes[1]), high = Math.max(compute, bytes[0]);
  return { low, high, bound: bytes[0] > compute ? 'bytes' : 'compute' };
}

export interface WorkModelRow {
  n: number; data: string; s: number; t: number;
  mmaBytesPerPair: number;
  wgmma: { blockN: 64 | 128; bytesPerPair: number; computedPerAttended: number; unpairedShare: number }[];
}

/** Deterministic uniform numbers in [0, 1) (mulberry32), so the model's numbers reproduce. */
const uniform = mulberry32;

/** The bench's data set at one head and the CPU method's selection for sparsity s. */
export function modelSelection(n: number, data: 'random' | 'shared', s: number) {
  const rand = uniform(n * 7 + (data === 'shared' ? 1 : 0));
  const qMean = data === 'shared' ? 0.5 : 0;
  const q = Float32Array.from({ length: n * D }, () => qMean + 2 * rand() - 1); // [n, 1, D]
  const k = Float32Array.from({ length: n * D }, () => 2 * rand() - 1); // [n, D]
  const t = topChunksForSparsity(n, C, s);
  const sel = selectBlockSparseChunks(new BlockSparsePrefill(C, null, t), q, [k], n, 1, D);
  return { t, lists: packChunkLists(sel), attended: selectionPairCount(sel, 0) };
}

export interface RowsModelRow {
  n: number; data: string; s: number; t: number;
  /** Per rows-per-CTA (64 per consumer warpgroup), with 64-key steps. */
  cta: { rows: number; consumers: number; bytesPerPair: number; computedPerAttended: number; unpairedShare: number }[];
}

/** Work per attended pair for CTAs of `rowsList` query rows (multiples of 64) on the bench's data. */
export function rowsWorkModel(n: number, data: 'random' | 'shared', s: number, rowsList: number[], blockN: 64 | 128 = 64): RowsModelRow {
  const { t, lists, attended } = modelSelection(n, data, s);
  const cta = rowsList.map((rows) => {
    if (!Number.isInteger(rows) || rows < 64 || rows % 64 !== 0) throw new Error(`rows per CTA must be a positive multiple of 64, got ${rows}`);
    const consumers = rows / 64, slots = rows / 16;
    let tiles = 0, computed = 0, unpaired = 0;
    for (let cr = 0; cr * rows < n; cr++) {
      const w = groupedCtaWork(ctaTileMasksForSlots(lists, n, 0, cr, slots), consumers, blockN / 16);
      tiles += w.tiles;
      computed += w.computed.reduce((a, b) => a + b, 0);
      unpaired += w.unpaired;
    }
    return {
      rows, consumers,
      bytesPerPair: (tiles * KV_BYTES_PER_TILE) / attended,
      computedPerAttended: (computed * 64 * blockN) / attended,
      unpairedShare: computed > 0 ? unpaired / computed : 0,
    };
  });
  return { n, data, s, t, cta };
}

export function workModel(n: number, data: 'random' | 'shared', s: number): WorkModelRow {
  const { t, lists, attended } = modelSelection(n, data, s);

  const mmaGeo = ctaGeometry({ numTokens: n, numHeads: 1, numKvHeads: 1, headsPerCta: 1, mTiles: 1, listStride: lists.stride, chunkSize: C });
  let mmaTiles = 0;
  for (let cr = 0; cr < mmaGeo.numCtaRows; cr++) mmaTiles += ctaUnion(lists, mmaGeo, 0, cr).length;

  const wgmma = ([64, 128] as const).map((blockN) => {
    const geo = wgmmaStepGeometry(n, 1, lists.stride, C, blockN);
    let tiles = 0, computed = 0, unpaired = 0;
    for (let cr = 0; cr < geo.numCtaRows; cr++) {
      const entries = wgmmaCtaSteps(lists, n, geo, 0, cr);
      tiles += entries.filter((e) => wgmmaEntryMask(e, 2) !== 0).length;
      const [a, b] = wgmmaComputedSteps(entries, geo.subTiles);
      computed += a + b;
      // Own steps beyond the shorter warpgroup's have no partner running beside them.
      const both = wgmmaStepsAll(entries, geo.subTiles);
      unpaired += Math.abs((a - both) - (b - both));
    }
    return {
      blockN,
      bytesPerPair: (tiles * KV_BYTES_PER_TILE) / attended,
      computedPerAttended: (computed * 64 * blockN) / attended,
      unpairedShare: computed > 0 ? unpaired / computed : 0,
    };
  });
  return { n, data, s, t, mmaBytesPerPair: (mmaTiles * KV_BYTES_PER_TILE) / attended, wgmma };
}

/** The command line (`--help` prints it). */
export const WGMMA_MODEL_ARGS = defineBenchArgs('block-sparse-wgmma-model', 'The work model behind the wgmma block-sparse kernel\'s prediction (CPU only).', {
  lengths: intList({ describe: 'prompt lengths', default: [16384, 65536], atLeast: C, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.5, 0.8, 0.9, 0.95] }),
  rows: intList({ describe: 'query rows per CTA, multiples of 64: print the rows-per-CTA table instead of the kernel-variant one', atLeast: 64, noun: 'row count' }),
}, 'node dist/bench/block-sparse-wgmma-model.js');

export type WgmmaModelOptions = BenchOptionsOf<typeof WGMMA_MODEL_ARGS.table>;

export function parseWgmmaModelArgs(argv: string[]): WgmmaModelOptions {
  return WGMMA_MODEL_ARGS.parse(argv);
}

function main(argv: string[]): void {
  const { lengths, sparsities, rows } = parseWgmmaModelArgs(argv);
  if (rows) return printRowsTable(lengths, sparsities, rows);
  console.log(`# one query head, D = ${D}, c = ${C}; CTA slots: wgmma ${WGMMA_CTA_SLOTS} x 16 rows, mma.sync h1m1 4 x 16 rows`);
  console.log('| n | data | s | t | mma.sync B/pair | wgmma n64: B/pair, computed/attended, unpaired | n64 predicted / ideal | wgmma n128: B/pair, computed/attended, unpaired | n128 predicted / ideal |');
  console.log('| ---: | --- | --- | ---: | ---: | --- | --- | --- | --- |');
  for (const n of lengths) {
    for (const data of ['shared', 'random'] as const) {
      for (const s of sparsities) {
        const r = workModel(n, data, s);
        const w = r.wgmma.map((x) => {
          const p = predictedRatio(n, x);
          return `${x.bytesPerPair.toFixed(1)}, ${x.computedPerAttended.toFixed(2)}, ${x.unpairedShare.toFixed(2)} | ` +
            `${p.low.toFixed(2)}–${p.high.toFixed(2)} (${p.bound})`;
        });
        console.log(`| ${n} | ${data} | ${s} | ${r.t} | ${r.mmaBytesPerPair.toFixed(1)} | ${w[0]} | ${w[1]} |`);
      }
    }
  }
}

function printRowsTable(lengths: number[], sparsities: number[], rows: number[]): void {
  console.log(`# one query head, D = ${D}, c = ${C}, 64-key steps; per rows per CTA: B/pair, computed/attended, unpaired share, predicted / ideal`);
  console.log(`| n | data | s | t | ${rows.map((r) => `${r} rows`).join(' | ')} |`);
  console.log(`| ---: | --- | --- | ---: |${rows.map(() => ' --- |').join('')}`);
  for (const n of lengths) {
    for (const data of ['shared', 'random'] as const) {
      for (const s of sparsities) {
        const r = rowsWorkModel(n, data, s, rows);
        const cells = r.cta.map((x) => {
          const p = predictedRatio(n, { blockN: 64, ...x });
          return `${x.bytesPerPair.toFixed(1)}, ${x.computedPerAttended.toFixed(2)}, ${x.unpairedShare.toFixed(2)}: ${p.low.toFixed(2)}–${p.high.toFixed(2)} (${p.bound})`;
        });
        console.log(`| ${n} | ${data} | ${s} | ${r.t} | ${cells.join(' | ')} |`);
      }
    }
  }
}

runIfDirect(import.meta.url, main);
