/**
 * vertical-slash-search.cu's entry groups (session 10): a module compiled with -DVS_SEARCH_ENTRIES=<id> defines
 * only that group's entries (its VS_SEARCH_ENTRIES_<NAME>, upper-cased names), so a search compiles only what its
 * options launch. Before, every first Vertical-Slash or FlexPrefill run compiled all 22 entries in one module (31.5 s
 * of a 34 s cold first call on an H100); the default searches now need the rank and defaults groups (7 + 4 entries).
 *   rank:       the ranking (chunked and whole-row), the rank order, the guided tree's model, vs_select_ranked (the
 *               index builder's selection): every search and both methods' defaults;
 *   defaults:   Vertical-Slash's default search (VERTICAL_SLASH_COUNT_SEARCH: lean guided rounds, ordered selections)
 *               with its selection hand-off twin, and FlexPrefill's (DEFAULT_COUNT_SEARCH in mode 1: the one-lane
 *               column-bitmap walk, and its two-level form past n = 131,040). Together on purpose: alone in a module,
 *               an entry is the only caller of the out-of-line walk helper (vs_block_pairs_lane_call), NVVM folds its
 *               shared stage into the helper and the entry's machine code differs from the whole module's; with two
 *               callers of each helper (the hand-off twin is the cheapest second one) all four are byte-identical;
 *   handOff:    the other guided kernels' selection hand-off twins (selectionHandOff);
 *   other:      the older searches and the options that are not default (one probe at a time, the heap tree, lanes,
 *               the session-7 guided kernel, thresholds, ranked bitmaps, lean without ordered selections; also
 *               Vertical-Slash's default past n = 209,664, where no bitmap fits);
 *   compact:    the compact layout's kernels (compactLayout);
 *   timed:      with VS_SEARCH_TIMING only: the session-8 round timing of the guided and unguided defaults;
 *   timedLean:  with VS_SEARCH_TIMING only: the round timing of the lean and compact layouts.
 * Without the define every entry is compiled (the compile checks and the host tests read the whole file). Machine
 * code against session 9's whole module (bench/vertical-slash-split-proof.ts): every entry of rank, defaults, handOff,
 * other and timedLean byte-identical; the timed group's guided entry is not (a diagnostic: its walk helper's callers).
 */

export const VS_SEARCH_ENTRY_GROUPS = {
  rank: { id: 1, entries: ['vs_rank_rows', 'vs_rank_chunks', 'vs_rank_merge', 'vs_rank_order', 'vs_guide_gains', 'vs_guide_scan', 'vs_select_ranked'] },
  defaults: {
    id: 2,
    entries: ['vs_count_search_batched_lanes_bits_guided_lean_order', 'vs_count_search_batched_lanes_bits_guided_lean_order_handoff',
      'vs_count_search_batched_lanes_bits', 'vs_count_search_batched_lanes_bits_coarse'],
  },
  handOff: { id: 4, entries: ['vs_count_search_batched_lanes_bits_guided_handoff', 'vs_count_search_batched_lanes_bits_guided_lean_handoff'] },
  other: {
    id: 5,
    entries: ['vs_count_search', 'vs_count_search_batched', 'vs_count_search_batched_lanes', 'vs_count_search_batched_guided',
      'vs_count_search_batched_lanes_bits_guided', 'vs_count_search_batched_lanes_bits_guided_thresholds',
      'vs_count_search_batched_lanes_bits_ranked', 'vs_count_search_batched_lanes_bits_guided_ranked',
      'vs_count_search_batched_lanes_bits_guided_lean'],
  },
  compact: {
    id: 6,
    entries: ['vs_count_search_batched_lanes_bits_guided_compact', 'vs_count_search_batched_lanes_bits_guided_compact_order',
      'vs_count_search_batched_lanes_bits_guided_compact_order_handoff'],
  },
  timed: { id: 7, entries: ['vs_count_search_batched_lanes_bits_guided_timed', 'vs_count_search_batched_lanes_bits_timed'] },
  timedLean: { id: 8, entries: ['vs_count_search_batched_lanes_bits_guided_lean_timed', 'vs_count_search_batched_lanes_bits_guided_compact_timed'] },
} as const;

export type VsSearchEntryGroup = keyof typeof VS_SEARCH_ENTRY_GROUPS;

export type VsSearchEntry = (typeof VS_SEARCH_ENTRY_GROUPS)[VsSearchEntryGroup]['entries'][number];

/** The groups whose entries exist only in VS_SEARCH_TIMING builds. */
const TIMED_GROUPS: ReadonlySet<VsSearchEntryGroup> = new Set(['timed', 'timedLean']);

/** The group that defines `entry` (each entry is in exactly one: a host test reads the .cu's guards). */
export function vsSearchEntryGroupOf(entry: VsSearchEntry): VsSearchEntryGroup {
  for (const [name, group] of Object.entries(VS_SEARCH_ENTRY_GROUPS) as [VsSearchEntryGroup, { entries: readonly string[] }][]) {
    if (group.entries.includes(entry)) return name;
  }
  throw new Error(`vertical-slash search: entry ${entry} is in no entry group`);
}

/** The -D defines of the module holding one entry group (the timing groups with VS_SEARCH_TIMING). */
export function vsSearchGroupDefines(group: VsSearchEntryGroup): Record<string, number> {
  return { VS_SEARCH_ENTRIES: VS_SEARCH_ENTRY_GROUPS[group].id, ...(TIMED_GROUPS.has(group) ? { VS_SEARCH_TIMING: 1 } : {}) };
}

const HEAD = ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'] as const;
/** The batched kernels' arguments with walk lanes (HEAD, then lanes). */
const LANES = [...HEAD, 'i32'] as const;

/** Each entry's parameter kinds, in order (the launcher's argument lists follow them). */
export const VS_SEARCH_ENTRY_PARAMS: Record<VsSearchEntry, readonly ('ptr' | 'i32')[]> = {
  vs_rank_rows: ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32'],
  vs_rank_chunks: ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32'],
  vs_rank_merge: ['ptr', 'ptr', 'ptr', 'i32'],
  vs_rank_order: ['ptr', 'ptr', 'i32'],
  vs_guide_gains: ['ptr', 'ptr', 'ptr', 'i32', 'i32'],
  vs_guide_scan: ['ptr', 'ptr', 'ptr', 'i32', 'i32'],
  vs_select_ranked: ['ptr', 'ptr', 'ptr', 'i32', 'ptr', 'i32', 'i32', 'i32'],
  vs_count_search: ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'],
  vs_count_search_batched: HEAD,
  vs_count_search_batched_lanes: LANES,
  vs_count_search_batched_lanes_bits: LANES,
  vs_count_search_batched_lanes_bits_coarse: LANES,
  vs_count_search_batched_lanes_bits_ranked: LANES,
  vs_count_search_batched_guided: [...HEAD, 'ptr'],
  vs_count_search_batched_lanes_bits_guided: [...LANES, 'ptr'],
  vs_count_search_batched_lanes_bits_guided_thresholds: [...LANES, 'ptr'],
  vs_count_search_batched_lanes_bits_guided_ranked: [...LANES, 'ptr'],
  vs_count_search_batched_lanes_bits_guided_lean: [...LANES, 'ptr'],
  vs_count_search_batched_lanes_bits_guided_lean_order: [...LANES, 'ptr', 'ptr'],
  vs_count_search_batched_lanes_bits_guided_handoff: [...LANES, 'ptr', 'ptr'],
  vs_count_search_batched_lanes_bits_guided_lean_handoff: [...LANES, 'ptr', 'ptr'],
  vs_count_search_batched_lanes_bits_guided_lean_order_handoff: [...LANES, 'ptr', 'ptr', 'ptr'],
  vs_count_search_batched_lanes_bits_guided_compact: [...LANES, 'ptr'],
  vs_count_search_batched_lanes_bits_guided_compact_order: [...LANES, 'ptr', 'ptr'],
  vs_count_search_batched_lanes_bits_guided_compact_order_handoff: [...LANES, 'ptr', 'ptr', 'ptr'],
  vs_count_search_batched_lanes_bits_guided_timed: [...LANES, 'ptr', 'ptr'],
  vs_count_search_batched_lanes_bits_timed: [...LANES, 'ptr'],
  vs_count_search_batched_lanes_bits_guided_lean_timed: [...LANES, 'ptr', 'ptr'],
  vs_count_search_batched_lanes_bits_guided_compact_timed: [...LANES, 'ptr', 'ptr'],
};
