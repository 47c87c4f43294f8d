/**
 * The multi-block step's unit-size entries (issue 9, session 8) checked without a GPU: which entry pair
 * questGridStepEntry picks for each version and unit size, and that the pair it names in quest.cu is
 * compiled for that unit size. quest.cu's QUEST_GRID_STEP_ENTRIES(SUFFIX, rolled, light, guessed, epoch,
 * FIXED_HEADS) invocations are read as text: an entry with FIXED_HEADS 1, 2, 4 or 8 may serve only units
 * of exactly that many heads, QUEST_ANY_PLAIN_HEADS (v7's scorer alone) any unit v8 would score as v7 (not
 * 1, 2 or 4), and 0 (v8's dispatch over every scorer) any unit. Also: every pair's entries exist with
 * v5's parameter kinds. The kernels themselves run in test/cuda/quest.test.ts (word for word against v3 at
 * units of 1, 2, 4, 7 and 8 heads).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  QUEST_GRID_PARAMS, QUEST_GRID_STEP_ENTRIES, QUEST_KERNEL_NAMES, type QuestKernelOptions, questGridStepEntry,
} from '../../src/backends/cuda/kernels/quest.js';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { entryParameterKinds } from './kernel-source-text.js';

const V7: QuestKernelOptions = { multiBlockStep: true, rolledScores: true };
const V8: QuestKernelOptions = { ...V7, lightScores: true };
const V9: QuestKernelOptions = { ...V8, guessedPass: true };
const V10: QuestKernelOptions = { ...V9, epochBarriers: true };

/** What one QUEST_GRID_STEP_ENTRIES invocation compiles: its template flags, FIXED_HEADS and BATCHED_SUMS. */
interface Compiled {
  rolled: boolean; light: boolean; guessed: boolean; epoch: boolean; fixedHeads: number | 'anyPlain'; batched: boolean; fused: boolean; prefetchedRefresh: boolean;
  rollingPrefetch: boolean;
}

/** quest.cu's step entries by name (both of each invocation: quest_grid_step<SUFFIX>, quest_grid_step_at<SUFFIX>). */
function compiledEntries(): Map<string, Compiled> {
  const source = readKernelSource('quest.cu');
  const entries = new Map<string, Compiled>();
  for (const m of source.matchAll(/^QUEST_GRID_STEP_ENTRIES\((\w*), ([^)]*)\)$/gm)) {
    const args = m[2]!.split(',').map((a) => a.trim());
    const flag = (i: number) => args[i] === 'true';
    const fixed = args[4] ?? '0';
    const compiled: Compiled = {
      rolled: flag(0), light: flag(1), guessed: flag(2), epoch: flag(3),
      fixedHeads: fixed === 'QUEST_ANY_PLAIN_HEADS' ? 'anyPlain' : Number(fixed), batched: flag(5), fused: flag(6), prefetchedRefresh: flag(7), rollingPrefetch: flag(8),
    };
    assert.ok(compiled.fixedHeads === 'anyPlain' || Number.isInteger(compiled.fixedHeads), `FIXED_HEADS "${fixed}" of ${m[1]}`);
    entries.set(`quest_grid_step${m[1]}`, compiled);
    entries.set(`quest_grid_step_at${m[1]}`, compiled);
  }
  return entries;
}

test('every step entry pair exists in quest.cu with v5\'s parameters (eager, then graph)', () => {
  const quest = readKernelSource('quest.cu');
  for (const [version, [eager, graph]] of Object.entries(QUEST_GRID_STEP_ENTRIES)) {
    assert.deepEqual(entryParameterKinds(quest, QUEST_KERNEL_NAMES[eager]), [...QUEST_GRID_PARAMS.gridStep], `${version}: ${eager}`);
    assert.deepEqual(entryParameterKinds(quest, QUEST_KERNEL_NAMES[graph]), [...QUEST_GRID_PARAMS.gridStepAt], `${version}: ${graph}`);
  }
});

test('the picked entries: versions as their options say, unit-size entries only with specializedHeads', () => {
  const s = { specializedHeads: true };
  for (const heads of [1, 2, 3, 4, 5, 6, 7, 8]) {
    assert.equal(questGridStepEntry({ multiBlockStep: true }, heads), 'v5');
    assert.equal(questGridStepEntry(V7, heads), 'v7');
    assert.equal(questGridStepEntry(V8, heads), 'v8');
    assert.equal(questGridStepEntry(V9, heads), 'v9');
    assert.equal(questGridStepEntry(V10, heads), 'v10');
  }
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((h) => questGridStepEntry({ ...V8, ...s }, h)), ['v8h1', 'v8h2', 'v7', 'v8h4', 'v7', 'v7', 'v7', 'v7']);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((h) => questGridStepEntry({ ...V10, ...s }, h)),
    ['v10h1', 'v10h2', 'v10hp', 'v10h4', 'v10hp', 'v10hp', 'v10hp', 'v10h8']);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((h) => questGridStepEntry({ ...V10, ...s, batchedPageSums: true }, h)),
    ['v10h1b', 'v10h2b', 'v10hp', 'v10h4b', 'v10hp', 'v10hp', 'v10hp', 'v10h8b']);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((h) => questGridStepEntry({ ...V10, ...s, constantPlainHeads: true }, h)),
    ['v10h1', 'v10h2', 'v10hp', 'v10h4', 'v10hp', 'v10hp', 'v10h7', 'v10h8']);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((h) => questGridStepEntry({ ...V10, ...s, constantPlainHeads: true, batchedPageSums: true }, h)),
    ['v10h1b', 'v10h2b', 'v10hp', 'v10h4b', 'v10hp', 'v10hp', 'v10h7b', 'v10h8b']);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((h) => questGridStepEntry({ ...V10, ...s, batchedPageSums: true, fusedProducts: true }, h)),
    ['v10h1b', 'v10h2b', 'v10hp', 'v10h4bf', 'v10hp', 'v10hp', 'v10hp', 'v10h8b']);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((h) => questGridStepEntry({ ...V10, ...s, batchedPageSums: true, prefetchedRefresh: true }, h)),
    ['v10h1b', 'v10h2b', 'v10hp', 'v10h4br', 'v10hp', 'v10hp', 'v10hp', 'v10h8b']);
});

test('each picked entry is compiled for the unit size it serves, with the version\'s flags', () => {
  const compiled = compiledEntries();
  const variants: Array<[string, QuestKernelOptions, Omit<Compiled, 'fixedHeads' | 'batched' | 'fused' | 'prefetchedRefresh' | 'rollingPrefetch'>]> = [
    ['v7', V7, { rolled: true, light: false, guessed: false, epoch: false }],
    ['v8', V8, { rolled: true, light: true, guessed: false, epoch: false }],
    ['v10', V10, { rolled: true, light: true, guessed: true, epoch: true }],
    ['v10, batched page sums', { ...V10, batchedPageSums: true }, { rolled: true, light: true, guessed: true, epoch: true }],
    ['v10, constant plain heads', { ...V10, constantPlainHeads: true }, { rolled: true, light: true, guessed: true, epoch: true }],
    ['v10, constant plain heads, batched page sums', { ...V10, constantPlainHeads: true, batchedPageSums: true }, { rolled: true, light: true, guessed: true, epoch: true }],
    ['v10, batched page sums, fused products', { ...V10, batchedPageSums: true, fusedProducts: true }, { rolled: true, light: true, guessed: true, epoch: true }],
    ['v10, batched page sums, prefetched refresh', { ...V10, batchedPageSums: true, prefetchedRefresh: true }, { rolled: true, light: true, guessed: true, epoch: true }],
    ['v10, batched page sums, rolling prefetch', { ...V10, batchedPageSums: true, rollingPrefetch: true }, { rolled: true, light: true, guessed: true, epoch: true }],
  ];
  for (const [label, options, flags] of variants) for (const specializedHeads of [false, true]) for (let heads = 1; heads <= 8; heads++) {
    if ((options.batchedPageSums || options.constantPlainHeads || options.fusedProducts || options.prefetchedRefresh || options.rollingPrefetch) && !specializedHeads) continue; // refused by QuestKernels
    const entry = questGridStepEntry({ ...options, specializedHeads }, heads);
    for (const key of QUEST_GRID_STEP_ENTRIES[entry]) {
      const name = QUEST_KERNEL_NAMES[key];
      const c = compiled.get(name);
      assert.ok(c, `${name} is a QUEST_GRID_STEP_ENTRIES invocation`);
      const what = `${label}${specializedHeads ? ' (unit-size entries)' : ''}, units of ${heads}: ${name}`;
      // v8's unit-size entries for 3 and 5-8 heads are v7's, the scorer v8 runs for them: flags as v7.
      const want = entry === 'v7' ? variants[0]![2] : flags;
      assert.deepEqual({ rolled: c.rolled, light: c.light, guessed: c.guessed, epoch: c.epoch }, want, what);
      if (c.fixedHeads === 'anyPlain') assert.ok(![1, 2, 4].includes(heads), `${what}: v7's scorer where v8 has a light one`);
      else if (c.fixedHeads !== 0) assert.equal(c.fixedHeads, heads, what);
      if (specializedHeads && c.light) assert.notEqual(c.fixedHeads, 0, `${what}: carries every scorer`);
      // The any-size entry (3, 5, 6, and 7 without constantPlainHeads) stays plain.
      const fixedSize = [1, 2, 4, 8].includes(heads) || (heads === 7 && (options.constantPlainHeads ?? false));
      assert.equal(c.batched, (options.batchedPageSums ?? false) && fixedSize, `${what}: batched page sums`);
      assert.equal(c.fused, (options.fusedProducts ?? false) && heads === 4, `${what}: fused products`);
      assert.equal(c.prefetchedRefresh, (options.prefetchedRefresh ?? false) && heads === 4, `${what}: prefetched refresh`);
      assert.equal(c.rollingPrefetch, (options.rollingPrefetch ?? false) && heads === 4, `${what}: rolling prefetch`);
    }
  }
});
