/**
 * Where the time of Quest's default multi-block step goes inside its one launch (issue 9, session 9), at
 * Llama-3.1-8B's shape (H = 32, Hkv = 8, d = 128, 16-row pages shared by each 4-head unit: the v10h4b entry).
 * The step runs as quest_grid_step_stamped4b (the same step, whose thread 0 of each block stamps %globaltimer and
 * clock64 at the ends of its phases: QuestStepArgs.phaseStamps) over page bounds rotated through as many copies as
 * keep them out of L2 (a model's layers each have their own), at the step's position n - 1 with the guess of the
 * previous step on the same copy (it holds: the same query). Per step it reads:
 *   - per block (clock64, converted at the clock rate the stamps give): score (start → scored), the guessed pass and
 *     the AND/OR publish (→ at the first barrier), the first barrier's wait, the guessed pass's read, phase C (→ at the
 *     final barrier, including any further radix pass), the final barrier's wait, phase D (the list writes);
 *   - across blocks (globaltimer): the launch's span (first start → last end), the start skew (first → last block
 *     start: how long the launch takes to place its blocks), and per barrier the arrival spread (first → last arrival
 *     of a unit) and the release latency (last arrival → first block past it);
 *   - the step with and without the stamps, timed with events over back-to-back steps (what the stamps cost).
 * --variants default,prefetched-refresh: also the default with the refreshed page's rows loaded 16 at a time (v10h4br,
 * stamped as quest_grid_step_stamped4br), on the same caches.
 * Medians over steps of per-step means over blocks (µs).
 *
 * Usage: node dist/bench/quest-phases.js [--lengths 131072,65536] [--sparsities 0.95,0.9] [--repeats N] [--out FILE]
 *        (--help). Prints a skip line without a GPU.
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import {
  DeviceQuestBounds, QUEST_GRID_MAX_BLOCKS, QUEST_PHASE_SLOTS, QUEST_PHASE_STAMP_BYTES, QUEST_PHASES, QuestKernels,
} from '../src/backends/cuda/kernels/quest.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import { questMultiBlockOptions } from '../src/backends/cuda/methods/quest.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { questPagesFor } from '../src/methods/quest.js';
import { defineBenchArgs, int, intList, labels, sparsityList, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { releaseQuestLayers, rotatedQuestLayers } from './quest-layers.js';
import { randomBf16Words, upload } from './gpu-bench-util.js';
import { median } from './sparse-prefill-measure.js';

const H = 32, HKV = 8, D = 128, P = 16;

export const QUEST_PHASES_ARGS = defineBenchArgs('quest-phases', 'Where Quest\'s default multi-block step spends its launch, from per-block phase stamps (GPU only).', {
  lengths: intList({ describe: 'cache lengths (at least 4,096 pages: the multi-block step)', default: [131072, 65536], atLeast: 65536, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.95, 0.9] }),
  repeats: int({ describe: 'steps stamped and timed per case', default: 30, atLeast: 4, noun: 'repeat count' }),
  variants: labels({ describe: 'the default 4-head step, or it with the prefetched refresh (v10h4br)', choices: ['default', 'prefetched-refresh'], default: ['default'] }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
}, 'node dist/bench/quest-phases.js');

/** One block's stamps of one step: globaltimer ns and clock64 cycles per phase slot (0 where not stamped). */
export interface BlockStamps { ns: bigint[]; cycles: bigint[] }

/** The per-step figures (µs), each a mean over the launch's blocks unless it is a launch-wide one. */
export interface StepPhases {
  score: number; guessPassAndPublish: number;
  /** The block's end of scoring (after a __syncthreads) from its start, and from thread 0's end of scoring (the skew between its warps). */
  blockScore: number; warpSkew: number; firstBarrierWait: number; guessRead: number; phaseC: number; finalBarrierWait: number; phaseD: number;
  /** Score phase of each unit's block 0 (it refreshes the current page first where its unit is its KV head's first) and of the others. */
  scoreBlock0: number; scoreOthers: number;
  span: number; startSkew: number; firstArrivalSpread: number; firstRelease: number; finalArrivalSpread: number; finalRelease: number;
  barriers: number; guessHeld: number;
}

interface Row { variant: string; n: number; s: number; pages: number; k: number; blocksPerUnit: number; clockGHz: number; plainUs: number; stampedUs: number; phases: StepPhases }

/** The blocks of every unit that ran (a nonzero start stamp), as [unit][block]. */
export function readStamps(words: BigUint64Array, units: number): BlockStamps[][] {
  const perUnit: BlockStamps[][] = [];
  for (let u = 0; u < units; u++) {
    const blocks: BlockStamps[] = [];
    for (let b = 0; b < QUEST_GRID_MAX_BLOCKS; b++) {
      const at = (u * QUEST_GRID_MAX_BLOCKS + b) * 2 * QUEST_PHASE_SLOTS;
      const ns = Array.from(words.subarray(at, at + QUEST_PHASE_SLOTS));
      if (ns[QUEST_PHASES.start] === 0n) continue;
      blocks.push({ ns, cycles: Array.from(words.subarray(at + QUEST_PHASE_SLOTS, at + 2 * QUEST_PHASE_SLOTS)) });
    }
    perUnit.push(blocks);
  }
  return perUnit;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** One step's phases from its stamps; cycles convert at `ghz`. */
export function stepPhases(perUnit: BlockStamps[][], ghz: number): StepPhases {
  const blocks = perUnit.flat();
  const Ph = QUEST_PHASES;
  const cyc = (b: BlockStamps, from: number, to: number) => Number(b.cycles[to]! - b.cycles[from]!) / ghz / 1e3;
  const ns = (x: bigint) => Number(x) / 1e3;
  const perBlock = (from: number, to: number) => mean(blocks.map((b) => cyc(b, from, to)));
  const starts = blocks.map((b) => ns(b.ns[Ph.start]!)), ends = blocks.map((b) => ns(b.ns[Ph.end]!));
  // Per unit: first to last arrival at a barrier, and last arrival to the first block past it.
  const barrier = (at: number, past: number) => {
    const spread: number[] = [], release: number[] = [];
    for (const unit of perUnit) {
      const arrivals = unit.map((b) => ns(b.ns[at]!)), passes = unit.map((b) => ns(b.ns[past]!));
      spread.push(Math.max(...arrivals) - Math.min(...arrivals));
      release.push(Math.min(...passes) - Math.max(...arrivals));
    }
    return { spread: mean(spread), release: mean(release) };
  };
  const first = barrier(Ph.atFirstBarrier, Ph.pastFirstBarrier), final = barrier(Ph.atFinalBarrier, Ph.pastFinalBarrier);
  return {
    score: perBlock(Ph.start, Ph.scored), guessPassAndPublish: perBlock(Ph.scored, Ph.atFirstBarrier),
    blockScore: perBlock(Ph.start, Ph.allScored), warpSkew: perBlock(Ph.scored, Ph.allScored),
    firstBarrierWait: perBlock(Ph.atFirstBarrier, Ph.pastFirstBarrier), guessRead: perBlock(Ph.pastFirstBarrier, Ph.firstPassRead),
    phaseC: perBlock(Ph.firstPassRead, Ph.atFinalBarrier), finalBarrierWait: perBlock(Ph.atFinalBarrier, Ph.pastFinalBarrier),
    phaseD: perBlock(Ph.pastFinalBarrier, Ph.end),
    scoreBlock0: mean(perUnit.map((u) => cyc(u[0]!, Ph.start, Ph.scored))),
    scoreOthers: mean(perUnit.flatMap((u) => u.slice(1).map((b) => cyc(b, Ph.start, Ph.scored)))),
    span: Math.max(...ends) - Math.min(...starts), startSkew: Math.max(...starts) - Math.min(...starts),
    firstArrivalSpread: first.spread, firstRelease: first.release, finalArrivalSpread: final.spread, finalRelease: final.release,
    barriers: mean(blocks.map((b) => Number(b.ns[Ph.barriers]!))), guessHeld: mean(blocks.map((b) => Number(b.ns[Ph.guessHeld]!))),
  };
}

function main(argv: string[]): number {
  const o = QUEST_PHASES_ARGS.parse(argv);
  if (!isCudaAvailable()) {
    console.log(`quest-phases bench skipped: ${cudaUnavailableReason()}`);
    return 0;
  }
  const rt = new CudaRuntime();
  console.log(`device: ${rt.cuda.info.name} (${rt.cuda.info.multiprocessors} SMs); H=${H} Hkv=${HKV} d=${D}, page ${P}, shared pages; repeats ${o.repeats}`);
  const shape = { numHeads: H, numKvHeads: HKV, headDim: D };
  const defaults = questMultiBlockOptions(shape, true);
  const kernelsOf: Record<string, QuestKernels> = {
    default: new QuestKernels(rt, shape, P, true, defaults),
    'prefetched-refresh': new QuestKernels(rt, shape, P, true, { ...defaults, prefetchedRefresh: true }),
  };
  if (kernelsOf.default!.stepEntry !== 'v10h4b') throw new Error(`quest-phases: the default 4-head step runs ${kernelsOf.default!.stepEntry}, the stamped entry is v10h4b's`);
  const kernels = kernelsOf.default!;
  const q = upload(rt, randomBf16Words(H * D, 5, 2));
  const ops = new ModelOpsKernels(rt);
  const stampWords = HKV * QUEST_PHASE_STAMP_BYTES / 8;
  const stamps = rt.pool.acquire(stampWords * 8);
  const rows: Row[] = [];
  for (const n of o.lengths) {
    // Random keys made on the device (the select reads keys only: the bounds, and the new row's page).
    const cache = new DeviceLayerKvCache(rt, HKV, D, n + P);
    ops.fillUniform({ x: cache.keys.ptr, n: HKV * cache.capacity * D, seed: n, mean: 0, halfWidth: 1 });
    cache.length = n;
    const current = Math.floor((n - 1) / P);
    const bounds0 = new DeviceQuestBounds(rt, shape, P, cache.capacity);
    kernels.updateBounds(bounds0, cache, n);
    const layers = rotatedQuestLayers(rt, shape, bounds0, cache.capacity, n, current, kernels.units, { multiBlock: true });
    const copies = layers.length;
    rt.synchronize();
    for (const s of o.sparsities) for (const variant of o.variants) {
      const kernels = kernelsOf[variant]!;
      const k = questPagesFor(n - 1, P, s, null);
      // Each step re-folds the new row into its page, as a decode step does.
      const step = (i: number, stamped: boolean) => {
        const l = layers[i % copies]!;
        l.bounds.coveredRows = n - 1;
        kernels.selectStep({ q: q.ptr, bounds: l.bounds, cache, rows: n, pages: current, k, scratch: l.scratch, segments: l.lists, ...(stamped ? { phaseStamps: stamps.ptr } : {}) });
      };
      for (let i = 0; i < copies; i++) step(i, false); // every copy's guess set
      const timed = (stamped: boolean) => {
        rt.synchronize();
        const [e0, e1] = [rt.cuda.createEvent(), rt.cuda.createEvent()];
        rt.cuda.record(e0, rt.stream);
        for (let i = 0; i < o.repeats; i++) step(i, stamped);
        rt.cuda.record(e1, rt.stream);
        const us = (rt.cuda.elapsedMs(e0, e1) * 1e3) / o.repeats;
        rt.cuda.destroyEvent(e0);
        rt.cuda.destroyEvent(e1);
        return us;
      };
      const plainUs = timed(false), stampedUs = timed(true);
      const steps: BlockStamps[][][] = [];
      const words = new BigUint64Array(stampWords);
      for (let i = 0; i < o.repeats; i++) {
        rt.cuda.fill32Async(stamps.ptr, 0, stampWords * 2, rt.stream);
        step(i, true);
        rt.synchronize();
        rt.cuda.download(words, stamps.ptr);
        steps.push(readStamps(words, kernels.units));
      }
      // The SM clock from the stamps themselves: cycles over ns of every block's whole step.
      let cycles = 0, nanos = 0;
      for (const b of steps.flat(2)) {
        cycles += Number(b.cycles[QUEST_PHASES.end]! - b.cycles[QUEST_PHASES.start]!);
        nanos += Number(b.ns[QUEST_PHASES.end]! - b.ns[QUEST_PHASES.start]!);
      }
      const ghz = cycles / nanos;
      const each = steps.map((perUnit) => stepPhases(perUnit, ghz));
      const phases = Object.fromEntries(Object.keys(each[0]!).map((key) => [key, median(each.map((p) => p[key as keyof StepPhases]))])) as unknown as StepPhases;
      const row: Row = { variant, n, s, pages: current, k, blocksPerUnit: steps[0]![0]!.length, clockGHz: ghz, plainUs, stampedUs, phases };
      rows.push(row);
      const f = (x: number) => x.toFixed(2);
      const p = row.phases;
      console.log(`${variant} n=${n} s=${s} pages=${current} k=${k} G=${row.blocksPerUnit} clock ${ghz.toFixed(3)} GHz: step ${f(plainUs)} us, stamped ${f(stampedUs)} us; ` +
        `per block: score ${f(p.score)} (whole block ${f(p.blockScore)}, warp skew ${f(p.warpSkew)}), guess pass + publish ${f(p.guessPassAndPublish)}, barrier 1 wait ${f(p.firstBarrierWait)}, guess read ${f(p.guessRead)}, ` +
        `C ${f(p.phaseC)}, final barrier wait ${f(p.finalBarrierWait)}, D ${f(p.phaseD)}; score block 0 ${f(p.scoreBlock0)} / others ${f(p.scoreOthers)}; launch span ${f(p.span)}, start skew ${f(p.startSkew)}; ` +
        `barrier 1 arrivals spread ${f(p.firstArrivalSpread)} release ${f(p.firstRelease)}; final arrivals spread ${f(p.finalArrivalSpread)} release ${f(p.finalRelease)}; ` +
        `barriers ${f(p.barriers)}, guess held ${f(p.guessHeld)}`);
    }
    releaseQuestLayers(layers);
    cache.release();
    rt.pool.trim();
  }
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info.name, rows }, null, 1));
  rt.pool.release(stamps);
  rt.pool.release(q);
  rt.dispose();
  return 0;
}

runIfDirect(import.meta.url, main);
