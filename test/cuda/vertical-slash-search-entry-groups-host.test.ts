/**
 * vertical-slash-search.cu's entry groups (session 10) checked without a GPU: the module a launcher loads for an entry
 * (VS_SEARCH_ENTRY_GROUPS, compiled with -DVS_SEARCH_ENTRIES=<id>) must be the one whose guard holds that entry in the
 * .cu, or the module would lack it at run time. The .cu is read as text: every entry sits in exactly one
 * `#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_<NAME>)` guard (the timed ones also under VS_SEARCH_TIMING), each guard's
 * entries are exactly its group's, the group numbers match, and the default searches load the groups they should.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import {
  VS_SEARCH_ENTRY_GROUPS, VS_SEARCH_ENTRY_PARAMS, type VsSearchEntryGroup, vsSearchEntryGroupOf, vsSearchGroupDefines,
} from '../../src/backends/cuda/kernels/vertical-slash-search-groups.js';

/** The .cu's entries by the guard that holds them (its VS_SEARCH_ENTRIES_<NAME>), and which guards also need timing. */
function guardedEntries(source: string): { byGuard: Map<string, string[]>; timed: Set<string> } {
  const byGuard = new Map<string, string[]>(), timed = new Set<string>();
  let guard: string | null = null;
  for (const line of source.split('\n')) {
    const opens = /^#if (defined\(VS_SEARCH_TIMING\) && )?VS_SEARCH_COMPILES\(VS_SEARCH_ENTRIES_(\w+)\)$/.exec(line);
    if (opens) {
      assert.equal(guard, null, `vertical-slash-search.cu: guard ${opens[2]} opened inside guard ${guard}`);
      guard = opens[2]!;
      if (opens[1]) timed.add(guard);
      continue;
    }
    if (guard !== null && /^#if/.test(line)) assert.fail(`vertical-slash-search.cu: "${line}" nested in guard ${guard}`);
    if (guard !== null && line === '#endif') {
      guard = null;
      continue;
    }
    const entry = /^extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?(\w+)\(/.exec(line);
    if (entry) {
      assert.ok(guard !== null, `vertical-slash-search.cu: entry ${entry[1]} outside every VS_SEARCH_COMPILES guard`);
      byGuard.set(guard, [...(byGuard.get(guard) ?? []), entry[1]!]);
    }
  }
  assert.equal(guard, null, 'vertical-slash-search.cu ends inside a guard');
  return { byGuard, timed };
}

/** VS_SEARCH_ENTRY_GROUPS' key for a guard name (HAND_OFF -> handOff). */
const keyOf = (guard: string) => guard.toLowerCase().replace(/_(\w)/g, (_m, c: string) => c.toUpperCase());

test('vertical-slash-search.cu numbers its entry groups as vertical-slash-search-groups.ts does', () => {
  const source = readKernelSource('vertical-slash-search.cu');
  const defined = new Map([...source.matchAll(/^#define VS_SEARCH_ENTRIES_(\w+) (\d+)/gm)].map((m) => [keyOf(m[1]!), Number(m[2])]));
  const expected = new Map(Object.entries(VS_SEARCH_ENTRY_GROUPS).map(([name, g]) => [name, g.id]));
  assert.deepEqual(defined, expected);
  assert.ok([...expected.values()].every((id) => id > 0), 'group 0 is the whole file');
  assert.equal(new Set(expected.values()).size, expected.size, 'group ids are distinct');
});

test('each guard holds exactly its group\'s entries, every entry is in one group, the timed groups need VS_SEARCH_TIMING', () => {
  const { byGuard, timed } = guardedEntries(readKernelSource('vertical-slash-search.cu'));
  const groups = Object.entries(VS_SEARCH_ENTRY_GROUPS) as [VsSearchEntryGroup, { entries: readonly string[] }][];
  assert.deepEqual(new Set([...byGuard.keys()].map(keyOf)), new Set(groups.map(([name]) => name)));
  for (const [guard, entries] of byGuard) {
    const group = keyOf(guard) as VsSearchEntryGroup;
    assert.deepEqual([...entries].sort(), [...VS_SEARCH_ENTRY_GROUPS[group].entries].sort(), guard);
    const needsTiming = 'VS_SEARCH_TIMING' in vsSearchGroupDefines(group);
    assert.equal(timed.has(guard), needsTiming, `${guard}: guarded ${timed.has(guard) ? 'with' : 'without'} VS_SEARCH_TIMING`);
  }
  const all = groups.flatMap(([, g]) => g.entries);
  assert.equal(new Set(all).size, all.length, 'no entry in two groups');
  assert.deepEqual(new Set(Object.keys(VS_SEARCH_ENTRY_PARAMS)), new Set(all), 'every entry has its parameter list');
  assert.equal(all.length, 29);
});

test('the default searches load the rank and defaults groups; the index builder\'s selection is in rank', () => {
  // Vertical-Slash (VERTICAL_SLASH_COUNT_SEARCH): chunked ranking, the guide, the rank order, the lean ordered search.
  for (const e of ['vs_rank_chunks', 'vs_rank_merge', 'vs_guide_gains', 'vs_guide_scan', 'vs_rank_order', 'vs_select_ranked'] as const) {
    assert.equal(vsSearchEntryGroupOf(e), 'rank', e);
  }
  assert.equal(vsSearchEntryGroupOf('vs_count_search_batched_lanes_bits_guided_lean_order'), 'defaults');
  // FlexPrefill (DEFAULT_COUNT_SEARCH in mode 1: no guided tree): the column-bitmap walk, one- or two-level.
  assert.equal(vsSearchEntryGroupOf('vs_count_search_batched_lanes_bits'), 'defaults');
  assert.equal(vsSearchEntryGroupOf('vs_count_search_batched_lanes_bits_coarse'), 'defaults');
  // The group holds exactly these four (a second caller of each walk helper keeps the whole module's machine code).
  assert.equal(VS_SEARCH_ENTRY_GROUPS.defaults.entries.length, 4);
  assert.equal(vsSearchEntryGroupOf('vs_count_search_batched_lanes_bits_guided_lean_order_handoff'), 'defaults');
  assert.deepEqual(vsSearchGroupDefines('defaults'), { VS_SEARCH_ENTRIES: 2 });
  assert.deepEqual(vsSearchGroupDefines('timed'), { VS_SEARCH_ENTRIES: 7, VS_SEARCH_TIMING: 1 });
});
