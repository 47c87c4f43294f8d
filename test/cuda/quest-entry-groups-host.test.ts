/**
 * quest.cu's entry groups (session 10) checked without a GPU: the group a launcher loads for a kernel
 * (QUEST_ENTRY_GROUPS, compiled with -DQUEST_ENTRIES=<id>) must be the group whose `#if QUEST_COMPILES(...)` guard
 * holds that entry in quest.cu, or the module would lack it at run time. quest.cu is read as text: each entry, written
 * out or made by one of its entry macros, must sit inside exactly one guard, and each guard's entries must be exactly
 * its group's kernels in quest.ts. Also: which groups a QuestKernels loads for its options, and the method's defaults.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import {
  type KernelKey, QUEST_ENTRY_GROUPS, QUEST_GRID_STEP_ENTRIES, QUEST_KERNEL_NAMES, type QuestEntryGroupName, questEntryGroupOf,
  questGridStepEntry, questGroupDefines, questLaunchGroups,
} from '../../src/backends/cuda/kernels/quest.js';
import { questDefaultEntryGroups, questMultiBlockOptions } from '../../src/backends/cuda/methods/quest.js';

/** quest.cu's entries by the guard that holds them (the guard's QUEST_ENTRIES_<NAME>), read line by line. */
function guardedEntries(source: string): Map<string, string[]> {
  const byGuard = new Map<string, string[]>();
  let guard: string | null = null;
  const add = (name: string) => {
    assert.ok(guard !== null, `quest.cu: entry ${name} outside every QUEST_COMPILES guard`);
    byGuard.set(guard, [...(byGuard.get(guard) ?? []), name]);
  };
  for (const line of source.split('\n')) {
    const opens = /^#if QUEST_COMPILES\(QUEST_ENTRIES_(\w+)\)$/.exec(line);
    if (opens) {
      assert.equal(guard, null, `quest.cu: guard ${opens[1]} opened inside guard ${guard}`);
      guard = opens[1]!;
      continue;
    }
    if (guard !== null && /^#if/.test(line)) assert.fail(`quest.cu: "${line}" nested in guard ${guard}`);
    if (guard !== null && line === '#endif') {
      guard = null;
      continue;
    }
    const written = /^extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?(\w+)\(/.exec(line);
    if (written) add(written[1]!);
    const steps = /^QUEST_GRID_STEP_ENTRIES\((\w*),/.exec(line);
    if (steps) {
      add(`quest_grid_step${steps[1]}`);
      add(`quest_grid_step_at${steps[1]}`);
    }
    const named = /^(?:QUEST_STAMPED_STEP_ENTRY|QUEST_GRID_SELECT_ENTRY)\((\w+),/.exec(line);
    if (named) add(named[1]!);
  }
  assert.equal(guard, null, 'quest.cu ends inside a guard');
  return byGuard;
}

test('quest.cu numbers its entry groups as quest.ts does', () => {
  const source = readKernelSource('quest.cu');
  const defined = new Map([...source.matchAll(/^#define QUEST_ENTRIES_(\w+) (\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
  const expected = new Map(Object.entries(QUEST_ENTRY_GROUPS).map(([name, g]) => [name.toUpperCase(), g.id]));
  assert.deepEqual(defined, expected);
  assert.ok(!expected.has('0') && [...expected.values()].every((id) => id > 0), 'group 0 is the whole file');
  assert.equal(new Set(expected.values()).size, expected.size, 'group ids are distinct');
  assert.deepEqual(questGroupDefines('v10h4b'), { QUEST_ENTRIES: 24 });
});

test('each quest.cu guard holds exactly its group\'s kernels, and every kernel is in one group', () => {
  const byGuard = guardedEntries(readKernelSource('quest.cu'));
  const groups = Object.entries(QUEST_ENTRY_GROUPS) as [QuestEntryGroupName, { kernels: readonly KernelKey[] }][];
  assert.deepEqual(new Set(byGuard.keys()), new Set(groups.map(([name]) => name.toUpperCase())));
  for (const [name, group] of groups) {
    const entries = group.kernels.map((key) => QUEST_KERNEL_NAMES[key]).sort();
    assert.deepEqual([...byGuard.get(name.toUpperCase())!].sort(), entries, name);
  }
  const allKeys = Object.keys(QUEST_KERNEL_NAMES) as KernelKey[];
  assert.equal(groups.reduce((n, [, g]) => n + g.kernels.length, 0), allKeys.length, 'no kernel in two groups');
  for (const key of allKeys) assert.ok((QUEST_ENTRY_GROUPS[questEntryGroupOf(key)].kernels as readonly KernelKey[]).includes(key), key);
  // Every step pair is its own group, under its own name.
  for (const [entry, pair] of Object.entries(QUEST_GRID_STEP_ENTRIES)) {
    for (const key of pair) assert.equal(questEntryGroupOf(key), entry);
  }
});

test('a QuestKernels loads base and what its options launch, nothing else', () => {
  const v3 = { fusedStep: false, multiBlockStep: false, windowStep: false, stepEntry: 'v5' as const };
  assert.deepEqual(questLaunchGroups(v3), ['base']);
  assert.deepEqual(questLaunchGroups({ ...v3, fusedStep: true }), ['base', 'v4']);
  assert.deepEqual(questLaunchGroups({ ...v3, windowStep: true }), ['base', 'window']);
  assert.deepEqual(questLaunchGroups({ ...v3, multiBlockStep: true, stepEntry: 'v10h4b' }), ['base', 'v10h4b']);
});

test('the method\'s defaults load base and one step pair per unit size: the 1, 2, 4, 7 and 8-head batched entries and v8', () => {
  assert.deepEqual(questDefaultEntryGroups(), ['base', 'v10h1b', 'v10h2b', 'v8', 'v10h4b', 'v10h7b', 'v10h8b']);
  // Llama-8B's 32:8 (4-head units) compiles base and v10h4b only; without shared pages every unit is one head.
  assert.equal(questGridStepEntry(questMultiBlockOptions({ numHeads: 32, numKvHeads: 8 }, true), 4), 'v10h4b');
  assert.equal(questGridStepEntry(questMultiBlockOptions({ numHeads: 32, numKvHeads: 8 }, false), 1), 'v10h1b');
});
