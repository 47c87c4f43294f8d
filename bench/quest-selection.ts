/**
 * Quest's per-step page selection on the GPU (issue 9), Llama-3.1-8B attention shape (H = 32,
 * Hkv = 8, d = 128, 16-row pages, pages shared by each GQA group), at n = 16K..128K and s = 0.5..0.95:
 *   - v3: three launches (bounds of the page the new row joined, page scores, 8-bit radix top-k
 *     over keys staged in shared memory), each part timed alone too, and the refined select alone;
 *   - v4: QuestKernels.selectStep, one launch (bounds refresh, scores, last-block refined top-k);
 *   - v5: QuestKernels.selectStep with multiBlockStep, one launch of G blocks per unit that score
 *     their chunks and select together (session 5), and its select alone on v3's score rows;
 *   - v6: QuestKernels.selectStep with windowStep, v5's blocks with a select of one barrier when the
 *     unit's previous key range brackets the k-th key (session 6), its select alone, and its step
 *     with the guess off (two barriers: what a step pays when the guess misses; the timed replays
 *     repeat one row, so the guess always holds there) and with its L2 prefetch of the bounds off;
 *   - v7: QuestKernels.selectStep with multiBlockStep and rolledScores, v5 whose lanes refill each
 *     load slot with the next batch's page as soon as it is scored (session 6, second round); its
 *     select alone is v5's kernel (a check of the run's noise), so step − select alone is its score phase;
 *   - v8: QuestKernels.selectStep with multiBlockStep, rolledScores and lightScores, v7 whose lanes
 *     hold the query in registers and multiply each dim by the one bound its sign picks (session 6,
 *     third round); its select alone is v5's kernel again, so step − select alone is its score phase;
 *   - v9: QuestKernels.selectStep with guessedPass too, v8 whose select runs its first radix pass on the
 *     unit's previous key range before the first barrier (session 7); its select alone is v9's own
 *     (quest_grid_select_guess), so select alone v8 / v9 is what the barrier it drops saves (the timed
 *     replays repeat one row, so the guess always holds there);
 *   - v10: v9 with epochBarriers, whose unit barriers and candidate counter are never reset (no exit
 *     fence and atomic per block); its select alone is its own (quest_grid_select_epoch);
 *   - v8h4: v8 run through its entries compiled for 4-head units alone (specializedHeads; ~76 KB of SASS
 *     instead of ~140 KB); its select alone is v5's kernel;
 *   - v4 to v10 also as graph steps (selectStepAt, what the model's graph-replayed decode runs);
 * graph replays over as many copies of the page bounds as keep them out of the 50 MB L2 (a model's
 * layers each have their own), beside the same with one copy (L2-hot, as bench/sparse-decode.ts
 * timed it) and eager launches (what an uncaptured step pays). Floor: the bounds' bytes (min and max,
 * bf16, every page of every KV head) at 3.35 TB/s.
 * Validates first: at every (n, s) the page lists of each version timed equal v3's, word for word.
 *
 * Usage: node dist/bench/quest-selection.js [--lengths 16384,...] [--sparsities 0.5,...] [--repeats N]
 *        [--versions v4,v5,v6,v7,v8,v9,v10,v8h4] [--out FILE]. v3 is always timed (the reference); --versions picks the
 *        others (default all eight; --help lists the options). Prints a skip line without a GPU.
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { DeviceQuestBounds, QuestKernels } from '../src/backends/cuda/kernels/quest.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { type DeviceTiming, timeGraphOnDevice, timeOnDevice } from '../src/backends/cuda/timing.js';
import { questPagesFor } from '../src/methods/quest.js';
import { defineBenchArgs, labels } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { type QuestLayer, releaseQuestLayers, rotatedQuestLayers } from './quest-layers.js';
import { kernelBenchOptions, randomBf16Words, upload } from './gpu-bench-util.js';

const H = 32, HKV = 8, D = 128, P = 16;
const HBM_BYTES_PER_S = 3.35e12;

/** One layer's selection state, as the device method keeps it. */
type Layer = QuestLayer;

/**
 * One step version's figures (µs per step): its step (selectStep), its select alone on the same score
 * rows, and its graph step (selectStepAt: position and budget read on the device, as the model's
 * graph-replayed decode runs it), all graph replays over the rotated bounds unless named.
 */
interface VersionTiming { us: number; hotUs: number; eagerUs: number; selectUs: number; atUs: number }

interface Row {
  n: number; s: number; pages: number; k: number; boundsMB: number; floorUs: number;
  v3Us: number; v3HotUs: number; v3EagerUs: number;
  v3BoundsUs: number; v3ScoresUs: number; v3SelectUs: number;
  v4: VersionTiming | null;
  /** v5 and its blocks per unit. */
  v5: (VersionTiming & { blocksPerUnit: number }) | null;
  /** v6, its blocks per unit, its step and select alone with the guess off (a miss: two barriers), its step without the L2 prefetch. */
  v6: (VersionTiming & { blocksPerUnit: number } & V6Variants) | null;
  /** v7 (v5 with rolled score loads) and its blocks per unit. */
  v7: (VersionTiming & { blocksPerUnit: number }) | null;
  /** v8 (v7 with the light per-page scoring) and its blocks per unit. */
  v8: (VersionTiming & { blocksPerUnit: number }) | null;
  /** v9 (v8 with a guessed first pass) and its blocks per unit. */
  v9: (VersionTiming & { blocksPerUnit: number }) | null;
  /** v10 (v9 with never-reset barriers) and its blocks per unit. */
  v10: (VersionTiming & { blocksPerUnit: number }) | null;
  /** v8 through its 4-head entries and its blocks per unit. */
  v8h4: (VersionTiming & { blocksPerUnit: number }) | null;
}

interface V6Variants { coldUs: number; coldSelectUs: number; noPrefetchUs: number }

const VERSIONS = ['v4', 'v5', 'v6', 'v7', 'v8', 'v9', 'v10', 'v8h4'] as const;
type Version = (typeof VERSIONS)[number];

/** The command line (`--help` prints it): the kernel benches' grid and the versions timed beside v3. */
export const QUEST_SELECTION_ARGS = defineBenchArgs('quest-selection', 'Quest\'s page selection per decode step on the GPU: each version against v3 (the reference), graphs and eager (GPU only).', {
  ...kernelBenchOptions(10, 2 * P),
  versions: labels({ describe: 'versions timed beside v3', choices: VERSIONS, default: [...VERSIONS] }),
}, 'node dist/bench/quest-selection.js');

export function parseQuestSelectionArgs(argv: string[]) {
  const { versions, ...kernel } = QUEST_SELECTION_ARGS.parse(argv);
  return { ...kernel, versions: new Set<Version>(versions) };
}

function main(argv: string[]): number {
  const { versions, ...o } = parseQuestSelectionArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`quest-selection bench skipped: ${cudaUnavailableReason()}`);
    return 0;
  }
  const rt = new CudaRuntime();
  console.log(`device: ${rt.cuda.info.name} (${rt.cuda.info.multiprocessors} SMs); H=${H} Hkv=${HKV} d=${D}, page ${P}, shared pages`);
  const shape = { numHeads: H, numKvHeads: HKV, headDim: D };
  const v3 = new QuestKernels(rt, shape, P, true, { selection: 'radix8' });
  const v4 = new QuestKernels(rt, shape, P, true, { selection: 'refined', fusedStep: true });
  const v5 = new QuestKernels(rt, shape, P, true, { multiBlockStep: true });
  const v6 = new QuestKernels(rt, shape, P, true, { windowStep: true });
  const v6Cold = new QuestKernels(rt, shape, P, true, { windowStep: true, windowGuess: false });
  const v6NoPrefetch = new QuestKernels(rt, shape, P, true, { windowStep: true, windowPrefetch: false });
  const v7 = new QuestKernels(rt, shape, P, true, { multiBlockStep: true, rolledScores: true });
  const v8 = new QuestKernels(rt, shape, P, true, { multiBlockStep: true, rolledScores: true, lightScores: true });
  const v9 = new QuestKernels(rt, shape, P, true, { multiBlockStep: true, rolledScores: true, lightScores: true, guessedPass: true });
  const v10 = new QuestKernels(rt, shape, P, true, { multiBlockStep: true, rolledScores: true, lightScores: true, guessedPass: true, epochBarriers: true });
  const v8h4 = new QuestKernels(rt, shape, P, true, { multiBlockStep: true, rolledScores: true, lightScores: true, specializedHeads: true });
  const q = upload(rt, randomBf16Words(H * D, 5, 2));
  // The graph steps' position p = n - 1 and budget table (budgets[p] = k), refilled per (n, s).
  const position = rt.pool.acquire(16);
  const rows: Row[] = [];
  const failures: string[] = [];
  const us = (t: DeviceTiming) => t.medianMs * 1e3;

  for (const n of o.lengths) {
    const cache = new DeviceLayerKvCache(rt, HKV, D, n + P);
    for (let t = 0; t < n; t += 8192) {
      const T = Math.min(8192, n - t);
      const k = upload(rt, randomBf16Words(T * HKV * D, 11 + t + n, 2));
      const v = upload(rt, randomBf16Words(T * HKV * D, 12 + t + n, 1));
      cache.appendTokens({ k: k.ptr, v: v.ptr, rowStride: HKV * D }, T);
      rt.synchronize();
      rt.pool.release(k);
      rt.pool.release(v);
    }
    // The step at position n - 1: pages before the current one are scored.
    const rowsAfter = n, current = Math.floor((n - 1) / P);
    const bounds0 = new DeviceQuestBounds(rt, shape, P, cache.capacity);
    v3.updateBounds(bounds0, cache, rowsAfter);
    const boundsBytes = 2 * HKV * current * D * 2;
    const layers = rotatedQuestLayers(rt, shape, bounds0, cache.capacity, rowsAfter, current, v4.units, { multiBlock: true, window: true });
    const copies = layers.length;
    rt.synchronize();
    const perGraph = copies * Math.max(1, Math.ceil(20 / copies));

    for (const s of o.sparsities) {
      const k = questPagesFor(n - 1, P, s, null);
      // Each step re-folds the new row into its page, as a decode step does.
      const v3Step = (l: Layer) => {
        l.bounds.coveredRows = rowsAfter - 1;
        v3.updateBounds(l.bounds, cache, rowsAfter);
        v3.scorePages(q.ptr, l.bounds, current, l.scratch.scores.ptr, l.scratch.pageCapacity);
        v3.selectPages(l.scratch.scores.ptr, l.scratch.pageCapacity, current, k, l.lists);
      };
      const oneLaunchStep = (kernels: QuestKernels) => (l: Layer) => {
        l.bounds.coveredRows = rowsAfter - 1;
        kernels.selectStep({ q: q.ptr, bounds: l.bounds, cache, rows: rowsAfter, pages: current, k, scratch: l.scratch, segments: l.lists });
      };
      const stepOf: Record<Version, (l: Layer) => void> = {
        v4: oneLaunchStep(v4), v5: oneLaunchStep(v5), v6: oneLaunchStep(v6), v7: oneLaunchStep(v7), v8: oneLaunchStep(v8), v9: oneLaunchStep(v9), v10: oneLaunchStep(v10), v8h4: oneLaunchStep(v8h4),
      };
      const budgets = new Int32Array(n);
      budgets[n - 1] = k;
      const budgetTable = rt.pool.acquire(n * 4);
      rt.synchronize();
      rt.cuda.upload(budgetTable.ptr, budgets);
      rt.cuda.upload(position.ptr, Int32Array.of(n - 1));
      const graphStepOf = (kernels: QuestKernels) => (l: Layer) => {
        kernels.selectStepAt({
          q: q.ptr, bounds: l.bounds, cache, position: position.ptr, budgets: budgetTable.ptr, maxPages: current, scratch: l.scratch, segments: l.lists,
        });
      };
      const atOf: Record<Version, (l: Layer) => void> = {
        v4: graphStepOf(v4), v5: graphStepOf(v5), v6: graphStepOf(v6), v7: graphStepOf(v7), v8: graphStepOf(v8), v9: graphStepOf(v9), v10: graphStepOf(v10), v8h4: graphStepOf(v8h4),
      };
      const multiBlockSelect = (kernels: QuestKernels) => (l: Layer) =>
        kernels.selectPagesMultiBlock(l.scratch.scores.ptr, l.scratch.pageCapacity, current, k, l.lists, l.scratch);
      const selectOf: Record<Version, (l: Layer) => void> = {
        v4: (l) => v4.selectPages(l.scratch.scores.ptr, l.scratch.pageCapacity, current, k, l.lists),
        v5: multiBlockSelect(v5),
        v6: multiBlockSelect(v6),
        v7: multiBlockSelect(v7),
        v8: multiBlockSelect(v8),
        v9: multiBlockSelect(v9),
        v10: multiBlockSelect(v10),
        v8h4: multiBlockSelect(v8h4),
      };

      const graph = (body: (i: number) => void) => us(timeGraphOnDevice(rt, body, { perGraph, repeats: o.repeats }));
      const eager = (body: (i: number) => void) => us(timeOnDevice(rt, body, { warmup: copies, repeats: Math.max(o.repeats, 2 * copies) }));
      // v3 first, each part alone too: these figures come out even if another version fails its check below.
      const v3Us = graph((i) => v3Step(layers[i % copies]));
      const v3HotUs = graph(() => v3Step(layers[0]));
      const v3EagerUs = eager((i) => v3Step(layers[i % copies]));
      const v3BoundsUs = graph((i) => {
        const l = layers[i % copies];
        l.bounds.coveredRows = rowsAfter - 1;
        v3.updateBounds(l.bounds, cache, rowsAfter);
      });
      // Also leaves every copy's score row in its scratch, which the selects alone below read.
      const v3ScoresUs = graph((i) => {
        const l = layers[i % copies];
        v3.scorePages(q.ptr, l.bounds, current, l.scratch.scores.ptr, l.scratch.pageCapacity);
      });
      const v3SelectUs = graph((i) => {
        const l = layers[i % copies];
        v3.selectPages(l.scratch.scores.ptr, l.scratch.pageCapacity, current, k, l.lists);
      });
      const floorUs = (boundsBytes / HBM_BYTES_PER_S) * 1e6;
      console.log(`n=${n} s=${s}: ${k} of ${current} pages, bounds ${(boundsBytes / 1e6).toFixed(1)} MB (floor ${floorUs.toFixed(1)} us, ${copies} copies): ` +
        `v3 ${v3Us.toFixed(1)} us (bounds ${v3BoundsUs.toFixed(1)} + scores ${v3ScoresUs.toFixed(1)} + select ${v3SelectUs.toFixed(1)}), ` +
        `L2-hot ${v3HotUs.toFixed(1)} us, eager ${v3EagerUs.toFixed(1)} us`);

      // Validation: each version's lists (its step, and its select alone on v3's scores) equal v3's, word for word.
      const words = HKV * layers[0].lists.stride;
      const listWords = 4 + 2 * Math.min(k, current);
      v3Step(layers[0]);
      rt.synchronize();
      const want = new Int32Array(words);
      rt.cuda.download(want, layers[0].lists.ptr);
      const mismatchOf = (label: string, run: (l: Layer) => void): string | null => {
        rt.cuda.fill32Async(layers[0].lists.ptr, 0x7fc00000, words, rt.stream);
        run(layers[0]);
        rt.synchronize();
        const got = new Int32Array(words);
        rt.cuda.download(got, layers[0].lists.ptr);
        for (let u = 0; u < HKV; u++) {
          const at = u * layers[0].lists.stride;
          for (let i = 0; i < listWords; i++) {
            if (got[at + i] !== want[at + i]) return `n=${n} s=${s}: ${label} list of unit ${u} differs from v3 at word ${i} (${got[at + i]} vs ${want[at + i]}); not timed`;
          }
        }
        return null;
      };
      const timed: Partial<Record<Version, VersionTiming>> = {};
      let v6Variants: V6Variants | null = null;
      for (const version of VERSIONS.filter((v) => versions.has(v))) {
        const mismatch = mismatchOf(`${version} step`, stepOf[version]) ?? mismatchOf(`${version} select alone`, selectOf[version]) ??
          mismatchOf(`${version} graph step`, atOf[version]) ??
          (version === 'v6'
            ? mismatchOf('v6 step, guess off', oneLaunchStep(v6Cold)) ?? mismatchOf('v6 select alone, guess off', multiBlockSelect(v6Cold)) ??
              mismatchOf('v6 step, no prefetch', oneLaunchStep(v6NoPrefetch))
            : null);
        if (mismatch) {
          console.error(mismatch);
          failures.push(mismatch);
          continue;
        }
        const step = stepOf[version], select = selectOf[version], at = atOf[version];
        const t: VersionTiming = {
          us: graph((i) => step(layers[i % copies])), hotUs: graph(() => step(layers[0])), eagerUs: eager((i) => step(layers[i % copies])),
          selectUs: graph((i) => select(layers[i % copies])), atUs: graph((i) => at(layers[i % copies])),
        };
        timed[version] = t;
        const blocks = version === 'v5' ? ` (${v5.gridBlocks(current, 'gridStep')} blocks per unit)`
          : version === 'v6' ? ` (${v6.gridBlocks(current, 'winStep')} blocks per unit)`
            : version === 'v7' ? ` (${v7.gridBlocks(current, 'gridStepRolled')} blocks per unit)`
              : version === 'v8' ? ` (${v8.gridBlocks(current, 'gridStepLight')} blocks per unit)`
                : version === 'v9' ? ` (${v9.gridBlocks(current, 'gridStepGuess')} blocks per unit)`
                  : version === 'v10' ? ` (${v10.gridBlocks(current, 'gridStepEpoch')} blocks per unit)`
                    : version === 'v8h4' ? ` (${v8h4.gridBlocks(current, 'gridStepLight4')} blocks per unit)` : '';
        let cold = '';
        if (version === 'v6') {
          const coldStep = oneLaunchStep(v6Cold), coldSelect = multiBlockSelect(v6Cold), noPrefetch = oneLaunchStep(v6NoPrefetch);
          v6Variants = {
            coldUs: graph((i) => coldStep(layers[i % copies])), coldSelectUs: graph((i) => coldSelect(layers[i % copies])),
            noPrefetchUs: graph((i) => noPrefetch(layers[i % copies])),
          };
          cold = `; guess off: step ${v6Variants.coldUs.toFixed(1)} us, select alone ${v6Variants.coldSelectUs.toFixed(1)} us; ` +
            `no prefetch: step ${v6Variants.noPrefetchUs.toFixed(1)} us`;
        }
        console.log(`n=${n} s=${s}: ${version}${blocks} ${t.us.toFixed(1)} us = ${(t.us / floorUs).toFixed(2)}x floor, ${(v3Us / t.us).toFixed(2)}x faster than v3; ` +
          `L2-hot ${t.hotUs.toFixed(1)} us, eager ${t.eagerUs.toFixed(1)} us; select alone ${t.selectUs.toFixed(1)} us (v3's ${v3SelectUs.toFixed(1)}); ` +
          `graph step ${t.atUs.toFixed(1)} us${cold}`);
      }
      rt.pool.release(budgetTable);
      const row: Row = {
        n, s, pages: current, k, boundsMB: boundsBytes / 1e6, floorUs, v3Us, v3HotUs, v3EagerUs, v3BoundsUs, v3ScoresUs, v3SelectUs,
        v4: timed.v4 ?? null, v5: timed.v5 ? { ...timed.v5, blocksPerUnit: v5.gridBlocks(current, 'gridStep') } : null,
        v6: timed.v6 && v6Variants ? { ...timed.v6, blocksPerUnit: v6.gridBlocks(current, 'winStep'), ...v6Variants } : null,
        v7: timed.v7 ? { ...timed.v7, blocksPerUnit: v7.gridBlocks(current, 'gridStepRolled') } : null,
        v8: timed.v8 ? { ...timed.v8, blocksPerUnit: v8.gridBlocks(current, 'gridStepLight') } : null,
        v9: timed.v9 ? { ...timed.v9, blocksPerUnit: v9.gridBlocks(current, 'gridStepGuess') } : null,
        v10: timed.v10 ? { ...timed.v10, blocksPerUnit: v10.gridBlocks(current, 'gridStepEpoch') } : null,
        v8h4: timed.v8h4 ? { ...timed.v8h4, blocksPerUnit: v8h4.gridBlocks(current, 'gridStepLight4') } : null,
      };
      rows.push(row);
    }
    releaseQuestLayers(layers);
    cache.release();
    rt.pool.trim();
  }
  rt.pool.release(q);
  rt.pool.release(position);
  // Side by side (graph replays, bounds rotated out of L2; µs per step).
  console.log('\n| n | s | k | floor | v3 | v4 | v5 | v6 | v6, guess off | v6, no prefetch | v5 / v6 | G | select alone v3 / v4 / v5 / v6 / v6 guess off | graph step v4 / v5 / v6 | L2-hot v3 / v5 / v6 | eager v3 / v5 / v6 |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :--- | :--- | :--- | :--- |');
  const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(1));
  for (const r of rows) {
    console.log(`| ${r.n / 1024}K | ${r.s} | ${r.k} | ${f(r.floorUs)} | ${f(r.v3Us)} | ${f(r.v4?.us)} | ${f(r.v5?.us)} | ${f(r.v6?.us)} | ${f(r.v6?.coldUs)} | ${f(r.v6?.noPrefetchUs)} | ` +
      `${r.v5 && r.v6 ? (r.v5.us / r.v6.us).toFixed(2) : '-'} | ${r.v6?.blocksPerUnit ?? r.v5?.blocksPerUnit ?? '-'} | ` +
      `${f(r.v3SelectUs)} / ${f(r.v4?.selectUs)} / ${f(r.v5?.selectUs)} / ${f(r.v6?.selectUs)} / ${f(r.v6?.coldSelectUs)} | ` +
      `${f(r.v4?.atUs)} / ${f(r.v5?.atUs)} / ${f(r.v6?.atUs)} | ` +
      `${f(r.v3HotUs)} / ${f(r.v5?.hotUs)} / ${f(r.v6?.hotUs)} | ${f(r.v3EagerUs)} / ${f(r.v5?.eagerUs)} / ${f(r.v6?.eagerUs)} |`);
  }
  // v7 against v5: the same select, so the step's difference is the score phase's (step − select alone).
  console.log('\n| n | s | k | G v5 / v7 | v5 | v7 | v5 / v7 | score phase v5 / v7 | select alone v5 / v7 | graph step v5 / v7 | L2-hot v5 / v7 | eager v5 / v7 |');
  console.log('| ---: | ---: | ---: | :--- | ---: | ---: | ---: | :--- | :--- | :--- | :--- | :--- |');
  for (const r of rows) {
    const phase = (t: VersionTiming | null) => (t ? t.us - t.selectUs : undefined);
    console.log(`| ${r.n / 1024}K | ${r.s} | ${r.k} | ${r.v5?.blocksPerUnit ?? '-'} / ${r.v7?.blocksPerUnit ?? '-'} | ${f(r.v5?.us)} | ${f(r.v7?.us)} | ` +
      `${r.v5 && r.v7 ? (r.v5.us / r.v7.us).toFixed(2) : '-'} | ${f(phase(r.v5))} / ${f(phase(r.v7))} | ${f(r.v5?.selectUs)} / ${f(r.v7?.selectUs)} | ` +
      `${f(r.v5?.atUs)} / ${f(r.v7?.atUs)} | ${f(r.v5?.hotUs)} / ${f(r.v7?.hotUs)} | ${f(r.v5?.eagerUs)} / ${f(r.v7?.eagerUs)} |`);
  }
  // v8 against v7 and v5: the same select (v5's kernel), so the steps differ by their score phases.
  console.log('\n| n | s | k | G v5 / v7 / v8 | v5 | v7 | v8 | v7 / v8 | score phase v5 / v7 / v8 | select alone v5 / v7 / v8 | graph step v5 / v7 / v8 | L2-hot v5 / v7 / v8 | eager v5 / v7 / v8 |');
  console.log('| ---: | ---: | ---: | :--- | ---: | ---: | ---: | ---: | :--- | :--- | :--- | :--- | :--- |');
  for (const r of rows) {
    const phase = (t: VersionTiming | null) => (t ? t.us - t.selectUs : undefined);
    const three = (pick: (t: VersionTiming) => number | undefined) => [r.v5, r.v7, r.v8].map((t) => f(t ? pick(t) : undefined)).join(' / ');
    console.log(`| ${r.n / 1024}K | ${r.s} | ${r.k} | ${r.v5?.blocksPerUnit ?? '-'} / ${r.v7?.blocksPerUnit ?? '-'} / ${r.v8?.blocksPerUnit ?? '-'} | ` +
      `${f(r.v5?.us)} | ${f(r.v7?.us)} | ${f(r.v8?.us)} | ${r.v7 && r.v8 ? (r.v7.us / r.v8.us).toFixed(2) : '-'} | ` +
      `${three((t) => phase(t))} | ${three((t) => t.selectUs)} | ${three((t) => t.atUs)} | ${three((t) => t.hotUs)} | ${three((t) => t.eagerUs)} |`);
  }
  // v9 and v10 against v8: the same scoring, so the steps differ by their selects (select alone v8 = v5's kernel, v9's and v10's their own).
  console.log('\n| n | s | k | G v8 / v9 / v10 | v8 | v9 | v10 | v8 − v9 | v9 − v10 | select alone v8 / v9 / v10 | score phase v8 / v9 / v10 | graph step v8 / v9 / v10 | L2-hot v8 / v9 / v10 | eager v8 / v9 / v10 |');
  console.log('| ---: | ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: | :--- | :--- | :--- | :--- | :--- |');
  for (const r of rows) {
    const three = (pick: (t: VersionTiming) => number) => [r.v8, r.v9, r.v10].map((t) => f(t ? pick(t) : undefined)).join(' / ');
    console.log(`| ${r.n / 1024}K | ${r.s} | ${r.k} | ${r.v8?.blocksPerUnit ?? '-'} / ${r.v9?.blocksPerUnit ?? '-'} / ${r.v10?.blocksPerUnit ?? '-'} | ` +
      `${f(r.v8?.us)} | ${f(r.v9?.us)} | ${f(r.v10?.us)} | ${r.v8 && r.v9 ? f(r.v8.us - r.v9.us) : '-'} | ${r.v9 && r.v10 ? f(r.v9.us - r.v10.us) : '-'} | ` +
      `${three((t) => t.selectUs)} | ${three((t) => t.us - t.selectUs)} | ${three((t) => t.atUs)} | ${three((t) => t.hotUs)} | ${three((t) => t.eagerUs)} |`);
  }
  // v8's 4-head entries against v8: the same code path, compiled alone.
  console.log('\n| n | s | k | v8 | v8h4 | select alone v8 / v8h4 | graph step v8 / v8h4 | L2-hot v8 / v8h4 | eager v8 / v8h4 |');
  console.log('| ---: | ---: | ---: | ---: | ---: | :--- | :--- | :--- | :--- |');
  for (const r of rows) {
    const two = (pick: (t: VersionTiming) => number) => [r.v8, r.v8h4].map((t) => f(t ? pick(t) : undefined)).join(' / ');
    console.log(`| ${r.n / 1024}K | ${r.s} | ${r.k} | ${f(r.v8?.us)} | ${f(r.v8h4?.us)} | ${two((t) => t.selectUs)} | ${two((t) => t.atUs)} | ` +
      `${two((t) => t.hotUs)} | ${two((t) => t.eagerUs)} |`);
  }
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info.name, rows, failures }, null, 1));
  rt.dispose();
  return failures.length > 0 ? 1 : 0;
}

runIfDirect(import.meta.url, main);
