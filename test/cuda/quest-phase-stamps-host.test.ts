/**
 * The stamped 4-head step (quest.cu's quest_grid_step_stamped4b, session 9; bench/quest-phases.ts reads its stamps)
 * checked without a GPU: it is v10h4b's step (the same template arguments as quest_grid_step_epoch4b) with one
 * pointer more, and quest.ts reads the stamps with quest.cu's slot numbers and layout. Every other entry passes
 * QuestNoStamps, whose calls compile to nothing (session 9 compared the PTX of the 49 other entries before and
 * after: equal up to label names).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  QUEST_GRID_MAX_BLOCKS, QUEST_GRID_PARAMS, QUEST_KERNEL_NAMES, QUEST_PHASE_SLOTS, QUEST_PHASE_STAMP_BYTES, QUEST_PHASES,
} from '../../src/backends/cuda/kernels/quest.js';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { entryParameterKinds } from './kernel-source-text.js';

test('the stamped steps are v10h4b\'s and v10h4br\'s steps with a stamp pointer last', () => {
  const quest = readKernelSource('quest.cu');
  assert.deepEqual(entryParameterKinds(quest, QUEST_KERNEL_NAMES.gridStepStamped4B), [...QUEST_GRID_PARAMS.gridStep, 'ptr']);
  assert.deepEqual(entryParameterKinds(quest, QUEST_KERNEL_NAMES.gridStepStamped4BR), [...QUEST_GRID_PARAMS.gridStep, 'ptr']);
  assert.match(quest, /^QUEST_GRID_STEP_ENTRIES\(_epoch4b, true, true, true, true, 4, true\)$/m);
  assert.match(quest, /^QUEST_GRID_STEP_ENTRIES\(_epoch4br, true, true, true, true, 4, true, false, true\)$/m);
  // _epoch4b's (and, with the refresh flag, _epoch4br's) template arguments.
  assert.match(quest, /quest_grid_step_body<true, true, true, true, 4, true, false, PREFETCHED_REFRESH, false, QuestPhaseStamps>\(/);
  assert.match(quest, /^QUEST_STAMPED_STEP_ENTRY\(quest_grid_step_stamped4b, false\)$/m);
  assert.match(quest, /^QUEST_STAMPED_STEP_ENTRY\(quest_grid_step_stamped4br, true\)$/m);
  // Only the stamped entry names QuestPhaseStamps as a template argument.
  assert.equal([...quest.matchAll(/, QuestPhaseStamps>/g)].length, 1);
});

test('quest.ts reads the stamps with quest.cu\'s slots and layout', () => {
  const quest = readKernelSource('quest.cu');
  const slot = (name: string): number => {
    const m = quest.match(new RegExp(`\\b${name} = (\\d+)\\b`));
    assert.ok(m, `${name} is a literal constant`);
    return Number(m[1]);
  };
  const names: Record<keyof typeof QUEST_PHASES, string> = {
    start: 'QUEST_PHASE_START', scored: 'QUEST_PHASE_SCORED', atFirstBarrier: 'QUEST_PHASE_AT_FIRST_BARRIER',
    pastFirstBarrier: 'QUEST_PHASE_PAST_FIRST_BARRIER', firstPassRead: 'QUEST_PHASE_FIRST_PASS_READ', atFinalBarrier: 'QUEST_PHASE_AT_FINAL_BARRIER',
    pastFinalBarrier: 'QUEST_PHASE_PAST_FINAL_BARRIER', end: 'QUEST_PHASE_END', barriers: 'QUEST_PHASE_BARRIERS', guessHeld: 'QUEST_PHASE_GUESS_HELD',
    allScored: 'QUEST_PHASE_ALL_SCORED',
  };
  for (const [key, name] of Object.entries(names)) assert.equal(QUEST_PHASES[key as keyof typeof QUEST_PHASES], slot(name), name);
  assert.equal(QUEST_PHASE_SLOTS, slot('QUEST_PHASE_SLOTS'));
  // [units, GRID_MAX_BLOCKS, 2 (globaltimer, clock64), slots] u64.
  assert.match(quest, /out \+ \(\(size_t\)blockIdx\.y \* GRID_MAX_BLOCKS \+ blockIdx\.x\) \* 2 \* QUEST_PHASE_SLOTS;/);
  assert.match(quest, /block\(\)\[QUEST_PHASE_SLOTS \+ phase\] = \(unsigned long long\)clock64\(\);/);
  assert.equal(QUEST_PHASE_STAMP_BYTES, QUEST_GRID_MAX_BLOCKS * 2 * QUEST_PHASE_SLOTS * 8);
  // The block-wide end of scoring: a __syncthreads only where the stamps are live (QuestNoStamps::ACTIVE is false).
  assert.match(quest, /if constexpr \(Stamps::ACTIVE\) \{\s*__syncthreads\(\);\s*stamps\.at\(QUEST_PHASE_ALL_SCORED\);/);
  assert.match(quest, /struct QuestNoStamps \{\s*static constexpr bool ACTIVE = false;/);
  // The slots are distinct and fit.
  const values = Object.values(QUEST_PHASES);
  assert.equal(new Set(values).size, values.length);
  assert.ok(values.every((v) => v >= 0 && v < QUEST_PHASE_SLOTS));
});
