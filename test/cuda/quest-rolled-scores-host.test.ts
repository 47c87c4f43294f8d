/**
 * v7's rolled score loads (quest.cu, quest_grid_score_chunk_rolled) checked without a GPU: a model of
 * each thread's load slots, step by step as the kernel runs them (prologue loads of the first batch,
 * then per slot: score the page the slot holds, refill it with the same slot's page of the next batch),
 * shows that every page of a block's chunk [lo, hi) is scored by all of its lanes exactly once, from
 * the slot that loaded that very page, and that no load reaches past hi; a mutant refill is caught.
 * Also: the launchers' parameter lists for v7's entries match quest.cu, and rolledScores needs v5.
 * The kernel itself runs in test/cuda/quest.test.ts against v3 and the CPU.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { QUEST_GRID_PARAMS, QUEST_KERNEL_NAMES, QuestKernels } from '../../src/backends/cuda/kernels/quest.js';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { entryParameterKinds } from './kernel-source-text.js';

const GRID_THREADS = 512;
const STEP_MAX_PASSES = 4;

/** Which page each slot refill asks for: the kernel's rule (the same slot's page one batch later), or a mutant. */
type Refill = (page: number, batch: number, pagesPerPass: number) => number;
const kernelRefill: Refill = (page, batch) => page + batch;

/**
 * Runs the rolled loop's slot schedule for one block's chunk [lo, hi) at head dim D; returns, per
 * page, how many lanes scored it, and throws where a lane scores a slot holding another page (or none)
 * or loads past hi.
 */
function rolledSchedule(lo: number, hi: number, D: number, refill: Refill): Int32Array {
  const lanes = D / 8;
  const pagesPerPass = GRID_THREADS / lanes;
  const batch = STEP_MAX_PASSES * pagesPerPass;
  const scoredBy = new Int32Array(Math.max(0, hi - lo));
  for (let tid = 0; tid < GRID_THREADS; tid++) {
    const slots = new Array<number>(STEP_MAX_PASSES).fill(-1);
    const load = (p: number, page: number) => {
      if (page >= hi) throw new Error(`tid ${tid}: load of page ${page} past ${hi}`);
      slots[p] = page;
    };
    for (let p = 0; p < STEP_MAX_PASSES; p++) {
      const page = lo + p * pagesPerPass + Math.floor(tid / lanes);
      if (page < hi) load(p, page);
    }
    for (let base = lo; base < hi; base += batch) {
      for (let p = 0; p < STEP_MAX_PASSES; p++) {
        const page = base + p * pagesPerPass + Math.floor(tid / lanes);
        if (page < hi) {
          if (slots[p] !== page) throw new Error(`tid ${tid}: page ${page} scored from slot ${p}, which holds ${slots[p]}`);
          scoredBy[page - lo]++;
        }
        const next = refill(page, batch, pagesPerPass);
        if (next < hi) load(p, next);
      }
    }
  }
  return scoredBy;
}

test('v7 rolled loads: every page of a chunk scored once per lane from the slot that loaded it, no load past the chunk', () => {
  const chunks: Array<[number, number]> = [[0, 0], [0, 1], [0, 31], [0, 128], [0, 129], [5, 260], [128, 512], [384, 896], [1000, 1511], [0, 1023]];
  for (const D of [64, 128]) {
    for (const [lo, hi] of chunks) {
      const scoredBy = rolledSchedule(lo, hi, D, kernelRefill);
      for (let i = 0; i < scoredBy.length; i++) assert.equal(scoredBy[i], D / 8, `D ${D}, chunk [${lo}, ${hi}): page ${lo + i} scored by ${scoredBy[i]} lanes`);
    }
  }
});

test('v7 rolled loads: the schedule model catches a refill of the wrong page', () => {
  // Refilling with the next pass's page (one pass ahead, not one batch) scores stale slots.
  assert.throws(() => rolledSchedule(0, 512, 128, (page, _batch, pagesPerPass) => page + pagesPerPass), /scored from slot/);
  // Refilling two batches ahead leaves the next batch's slots holding the wrong pages.
  assert.throws(() => rolledSchedule(0, 512, 128, (page, batch) => page + 2 * batch), /scored from slot/);
});

test('v7 rolled loads: quest.cu refills each slot with its page one batch on, the rule the model runs', () => {
  const quest = readKernelSource('quest.cu');
  // v7 (and v8) run the one rolled loop, quest_grid_score_chunk_rolled_by, with their scorer.
  const v7At = quest.indexOf('__device__ __forceinline__ void quest_grid_score_chunk_rolled(');
  assert.ok(v7At >= 0, 'quest_grid_score_chunk_rolled is defined');
  assert.match(quest.slice(v7At, quest.indexOf('\n}\n', v7At)), /quest_grid_score_chunk_rolled_by<QuestPlainScorer, BATCHED_SUMS>\(pageMin, pageMax, D, hk, pageStride, lo, hi, keys, a, o, scorer\);/);
  const start = quest.indexOf('__device__ __forceinline__ void quest_grid_score_chunk_rolled_by(');
  assert.ok(start >= 0, 'quest_grid_score_chunk_rolled_by is defined');
  const body = quest.slice(start, quest.indexOf('\n}\n', start));
  assert.match(body, /const int batch = STEP_MAX_PASSES \* pagesPerPass;/);
  assert.match(body, /const int page = lo \+ p \* pagesPerPass \+ tid \/ lanes;/);
  assert.match(body, /const int page = base \+ p \* pagesPerPass \+ tid \/ lanes;/);
  assert.match(body, /const int next = page \+ batch;\s*if \(next < hi\) \{/);
  assert.match(quest, new RegExp(`constexpr int STEP_MAX_PASSES = STEP_PAGES_PER_BLOCK / \\(STEP_THREADS / 16\\);`));
  assert.match(quest, /constexpr int GRID_THREADS = 512;/);
});

test('v5 and v7 launchers declare the parameters quest.cu\'s step kernels take (pointers, then 32-bit integers)', () => {
  const quest = readKernelSource('quest.cu');
  for (const [kernel, params] of [
    ['gridStep', QUEST_GRID_PARAMS.gridStep], ['gridStepRolled', QUEST_GRID_PARAMS.gridStep],
    ['gridStepAt', QUEST_GRID_PARAMS.gridStepAt], ['gridStepAtRolled', QUEST_GRID_PARAMS.gridStepAt],
  ] as const) {
    const name = QUEST_KERNEL_NAMES[kernel];
    const kinds = entryParameterKinds(quest, name);
    assert.ok(kinds, `${name} is defined`);
    assert.deepEqual(kinds, [...params], name);
  }
});

test('rolledScores is an option of the multi-block step', () => {
  // The constructor checks its options before it touches the runtime.
  const rt = {} as unknown as CudaRuntime;
  const shape = { numHeads: 32, numKvHeads: 8, headDim: 128 };
  assert.throws(() => new QuestKernels(rt, shape, 16, true, { rolledScores: true }), /rolledScores \(v7\) is an option of the multi-block step/);
  assert.throws(() => new QuestKernels(rt, shape, 16, true, { windowStep: true, rolledScores: true }), /multi-block step/);
  const v7 = new QuestKernels(rt, shape, 16, true, { multiBlockStep: true, rolledScores: true });
  assert.equal(v7.rolledScores, true);
  assert.equal(v7.multiBlockStep, true);
  assert.equal(new QuestKernels(rt, shape, 16, true, { multiBlockStep: true }).rolledScores, false, 'v5 keeps its own score loop');
});
