/**
 * Which Quest selection the method runs from QUEST_MULTI_BLOCK_MIN_PAGES pages (questMultiBlockOptions):
 * v10 on its unit-size entries for units of 1, 2, 4 and 8 query heads, with batched page sums (measured
 * faster in the method's step: docs/perf.md "Session 7: the Quest step", "Session 8: unit-size entries"), v8 for
 * every other unit. Host only; the options are
 * validated by QuestKernels' own rules on the GPU (test/cuda/quest.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { questGridStepEntry } from '../../src/backends/cuda/kernels/quest.js';
import { questMultiBlockOptions } from '../../src/backends/cuda/methods/quest.js';

const V8 = { multiBlockStep: true, rolledScores: true, lightScores: true };

test('shared pages over 4-head GQA groups (Llama-8B: 32 / 8) and 8-head ones (Llama-70B: 64 / 8) run v10 on the unit-size entries', () => {
  const v10UnitSize = { ...V8, guessedPass: true, epochBarriers: true, specializedHeads: true };
  assert.deepEqual(questMultiBlockOptions({ numHeads: 32, numKvHeads: 8 }, true), { ...v10UnitSize, batchedPageSums: true });
  assert.deepEqual(questMultiBlockOptions({ numHeads: 16, numKvHeads: 4 }, true), { ...v10UnitSize, batchedPageSums: true });
  // Units of 8 batch their page sums since session 9.
  assert.deepEqual(questMultiBlockOptions({ numHeads: 64, numKvHeads: 8 }, true), { ...v10UnitSize, batchedPageSums: true }, 'Llama-70B: units of 8');
  assert.deepEqual(questMultiBlockOptions({ numHeads: 16, numKvHeads: 2 }, true), { ...v10UnitSize, batchedPageSums: true }, 'units of 8');
});

test('units of 1 query head (pages per query head, or no GQA) run v10 on the 1-head entries', () => {
  const v10UnitSize = { ...V8, guessedPass: true, epochBarriers: true, specializedHeads: true, batchedPageSums: true };
  assert.deepEqual(questMultiBlockOptions({ numHeads: 32, numKvHeads: 8 }, false), v10UnitSize, 'per query head: units of 1');
  assert.deepEqual(questMultiBlockOptions({ numHeads: 4, numKvHeads: 2 }, false), v10UnitSize, 'the organism per query head');
  assert.deepEqual(questMultiBlockOptions({ numHeads: 32, numKvHeads: 32 }, true), v10UnitSize, 'no GQA');
});

test('units of 2 query heads (the organism\'s GQA) run v10 on the 2-head entries with batched page sums (session 9)', () => {
  const v10UnitSize = { ...V8, guessedPass: true, epochBarriers: true, specializedHeads: true, batchedPageSums: true };
  assert.deepEqual(questMultiBlockOptions({ numHeads: 4, numKvHeads: 2 }, true), v10UnitSize, 'the organism: units of 2');
  assert.deepEqual(questMultiBlockOptions({ numHeads: 32, numKvHeads: 16 }, true), v10UnitSize, 'units of 2');
});

test('units of 7 query heads (Qwen2.5-7B: 28 / 4) run v10 on the constant-7-head entries with batched page sums (session 9)', () => {
  const v10h7b = { ...V8, guessedPass: true, epochBarriers: true, specializedHeads: true, constantPlainHeads: true, batchedPageSums: true };
  assert.deepEqual(questMultiBlockOptions({ numHeads: 28, numKvHeads: 4 }, true), v10h7b, 'Qwen2.5-7B: units of 7');
  assert.deepEqual(questMultiBlockOptions({ numHeads: 14, numKvHeads: 2 }, true), v10h7b, 'units of 7');
});

test('other unit sizes keep v8', () => {
  assert.deepEqual(questMultiBlockOptions({ numHeads: 24, numKvHeads: 4 }, true), V8, 'units of 6');
  assert.deepEqual(questMultiBlockOptions({ numHeads: 24, numKvHeads: 8 }, true), V8, 'units of 3');
  assert.deepEqual(questMultiBlockOptions({ numHeads: 40, numKvHeads: 8 }, true), V8, 'Qwen2.5-14B: units of 5');
});

test('the default options pick the entries the rules admitted: v10 with batched page sums for 1, 2, 4, 7, 8 heads, v8 else', () => {
  const entryFor = (H: number, Hkv: number) => questGridStepEntry(questMultiBlockOptions({ numHeads: H, numKvHeads: Hkv }, true), H / Hkv);
  assert.deepEqual([[8, 8], [16, 8], [24, 8], [32, 8], [40, 8], [48, 8], [56, 8], [64, 8]].map(([H, Hkv]) => entryFor(H!, Hkv!)),
    ['v10h1b', 'v10h2b', 'v8', 'v10h4b', 'v8', 'v8', 'v10h7b', 'v10h8b']);
});
