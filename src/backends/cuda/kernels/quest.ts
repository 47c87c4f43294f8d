/**
 * Launchers for quest.cu: Quest's per-page key bounds kept up to date on the device, the page scores
 * of a decode query and the top-k page selection written as segment lists for segment-decode.cu.
 * Nothing comes back to the host: the budget k depends on the position only and is decided there.
 * selectStep does a decode step's whole selection: by default as three kernels (updateBounds,
 * scorePages, selectPages with the 8-bit radix select: v3), or with { fusedStep: true } in one launch
 * (quest_select_step, v4: refresh, scores and a last-block top-k), which gives the same lists but
 * measured 0.84-1.01x v3's speed on an H100 (docs/perf.md, "Quest page selection"), so it is not the
 * default. selectStepAt is v4 for decode steps replayed from a captured CUDA graph (issue 9): the
 * position is read on the device and the budget from a per-position table the host filled with its
 * own rule, so one capture serves every step. With { multiBlockStep: true } both run v5 instead
 * (quest_grid_step / quest_grid_step_at, session 5): one launch in which G blocks per unit score
 * their chunks of pages and select together through per-unit barriers, so no block walks a whole
 * row; same lists as v3 and v4. Not the default until measured (docs/perf.md, "Session 5:
 * multi-block Quest selection"). With { windowStep: true } both run v6 (quest_win_step /
 * quest_win_step_at, session 6): v5's blocks, but one barrier per select where the unit's previous
 * key range still brackets the k-th key and two where not (v5: three); not the default until measured.
 * With { multiBlockStep: true, rolledScores: true } both run v7 (quest_grid_step_rolled /
 * quest_grid_step_at_rolled, session 6): v5 whose lanes ask for the next batch of bounds as soon as
 * each page is scored, so a block always has a batch in flight; same select, same lists. With
 * { multiBlockStep: true, rolledScores: true, lightScores: true } both run v8 (quest_grid_step_light /
 * quest_grid_step_at_light, session 6): v7 whose lanes hold the query in registers and pick one bound
 * per dim by the query's sign (units of 1, 2 or 4 heads; other units score as v7); same keys and lists.
 * With guessedPass too, both run v9 (quest_grid_step_guess / quest_grid_step_at_guess, session 7): v8
 * whose select runs its first radix pass on the unit's key range at its previous select, before the
 * first barrier, and keeps it where this step's AND/OR shows every key matched it (two unit barriers
 * instead of three), else goes on as v5's; same cut, same lists. Not the default until measured.
 * With epochBarriers too, both run v10 (quest_grid_step_epoch / quest_grid_step_at_epoch): v9 whose unit
 * barriers and candidate counter are never reset, so no block ends with an exit fence and atomic.
 * With specializedHeads (v8 or v10), both run entries that carry only the unit size's scorer
 * (questGridStepEntry: session 7 measured v8's four-scorer entry ~4 us slower in the method's step than its
 * 4-head twin); with batchedPageSums too, v10's 1-, 2-, 4- and 8-head entries sum a batch's four page scores as
 * one reduce-scatter over the lanes (same sums); with constantPlainHeads, 7-head units run v7's scorer with the
 * head count a constant.
 * Compiling: quest.cu's entries come in groups (QUEST_ENTRY_GROUPS, one NVRTC module each, session 10), and prepare()
 * compiles only the groups its options launch (v3's kernels and v4's graph step, plus one step entry pair for the
 * multi-block step): 5.5 s cold on an H100 for Llama-8B's default instead of 64 s for the file's every entry.
 */
import type { DevicePtr } from '../context.js';
import type { DeviceLayerKvCache } from '../kv-cache.js';
import type { DeviceBuffer } from '../memory-pool.js';
import type { CudaKernel, LaunchConfig, ParamKind } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { SegmentLists } from './segment-decode.js';

const SCORE_THREADS = 256;
const SELECT_THREADS = 1024;
const STEP_THREADS = 512;
/** Pages one quest_select_step block scores (STEP_PAGES_PER_BLOCK in quest.cu). */
const STEP_PAGES_PER_BLOCK = 128;
/** Pages whose keys the selection keeps in shared memory (beyond: read from global memory each pass). */
const MAX_STAGED_PAGES = (96 * 1024) / 4;
/** v5's block size (GRID_THREADS in quest.cu). */
const GRID_THREADS = 512;
/** v5's most blocks per unit (GRID_MAX_BLOCKS in quest.cu: the per-block count slots of the scratch). */
export const QUEST_GRID_MAX_BLOCKS = 32;
/**
 * v5's scratch words per unit (QUEST_GRID_UNIT_WORDS in quest.cu): sync and v9's guess words, per-block counts, candidates,
 * 4 histogram slots (v5's three passes; v9 may histogram a missed guess first), v10's 4 never-reset sync words.
 */
export const QUEST_GRID_UNIT_WORDS = 8 + 2 * QUEST_GRID_MAX_BLOCKS + 2 * 256 + 4 * 2048 + 4;
/**
 * v5 gives each block at least this many pages (one batch of four score passes at D = 128): fewer
 * would add barrier arrivals without adding loads in flight.
 */
const GRID_MIN_PAGES_PER_BLOCK = 128;
/** v6's buckets per pass (WIN_BUCKETS in quest.cu). */
const WIN_BUCKETS = 1024;
/** v6's most passes per select (WIN_MAX_PASSES in quest.cu): a guessed window, then at most four narrowing ones. */
const WIN_MAX_PASSES = 5;
/**
 * v6's scratch words per unit before its sorted keys (WS_SORTED in quest.cu): sync and guess words, one
 * histogram per pass, per block its counts at or above each bucket.
 */
export const QUEST_WIN_FIXED_WORDS = 8 + WIN_MAX_PASSES * WIN_BUCKETS + QUEST_GRID_MAX_BLOCKS * WIN_BUCKETS;
/** v6's scratch words per unit for rows of up to pageCapacity pages: the fixed part, then keys and pages sorted by bucket. */
export function questWindowUnitWords(pageCapacity: number): number {
  return QUEST_WIN_FIXED_WORDS + 2 * pageCapacity;
}
/** quest.cu's entry points by the launchers' names for them. */
export const QUEST_KERNEL_NAMES = {
  bounds: 'quest_update_bounds', scores: 'quest_page_scores', select: 'quest_select_pages', step: 'quest_select_step',
  stepAt: 'quest_select_step_at', gridStep: 'quest_grid_step', gridStepAt: 'quest_grid_step_at', gridSelect: 'quest_grid_select',
  winStep: 'quest_win_step', winStepAt: 'quest_win_step_at', winSelect: 'quest_win_select',
  gridStepRolled: 'quest_grid_step_rolled', gridStepAtRolled: 'quest_grid_step_at_rolled',
  gridStepLight: 'quest_grid_step_light', gridStepAtLight: 'quest_grid_step_at_light',
  gridStepGuess: 'quest_grid_step_guess', gridStepAtGuess: 'quest_grid_step_at_guess', gridSelectGuess: 'quest_grid_select_guess',
  gridStepEpoch: 'quest_grid_step_epoch', gridStepAtEpoch: 'quest_grid_step_at_epoch', gridSelectEpoch: 'quest_grid_select_epoch',
  gridStepLight4: 'quest_grid_step_light4', gridStepAtLight4: 'quest_grid_step_at_light4',
  gridStepEpoch4: 'quest_grid_step_epoch4', gridStepAtEpoch4: 'quest_grid_step_at_epoch4',
  gridStepLight1: 'quest_grid_step_light1', gridStepAtLight1: 'quest_grid_step_at_light1',
  gridStepLight2: 'quest_grid_step_light2', gridStepAtLight2: 'quest_grid_step_at_light2',
  gridStepEpoch1: 'quest_grid_step_epoch1', gridStepAtEpoch1: 'quest_grid_step_at_epoch1',
  gridStepEpoch2: 'quest_grid_step_epoch2', gridStepAtEpoch2: 'quest_grid_step_at_epoch2',
  gridStepEpoch8: 'quest_grid_step_epoch8', gridStepAtEpoch8: 'quest_grid_step_at_epoch8',
  gridStepEpochP: 'quest_grid_step_epochp', gridStepAtEpochP: 'quest_grid_step_at_epochp',
  gridStepEpoch1B: 'quest_grid_step_epoch1b', gridStepAtEpoch1B: 'quest_grid_step_at_epoch1b',
  gridStepEpoch4B: 'quest_grid_step_epoch4b', gridStepAtEpoch4B: 'quest_grid_step_at_epoch4b',
  gridStepEpoch2B: 'quest_grid_step_epoch2b', gridStepAtEpoch2B: 'quest_grid_step_at_epoch2b',
  gridStepEpoch8B: 'quest_grid_step_epoch8b', gridStepAtEpoch8B: 'quest_grid_step_at_epoch8b',
  gridStepEpoch7: 'quest_grid_step_epoch7', gridStepAtEpoch7: 'quest_grid_step_at_epoch7',
  gridStepEpoch7B: 'quest_grid_step_epoch7b', gridStepAtEpoch7B: 'quest_grid_step_at_epoch7b',
  gridStepEpoch4BF: 'quest_grid_step_epoch4bf', gridStepAtEpoch4BF: 'quest_grid_step_at_epoch4bf',
  gridStepEpoch4BR: 'quest_grid_step_epoch4br', gridStepAtEpoch4BR: 'quest_grid_step_at_epoch4br',
  gridStepEpoch4BP: 'quest_grid_step_epoch4bp', gridStepAtEpoch4BP: 'quest_grid_step_at_epoch4bp',
  gridStepStamped4B: 'quest_grid_step_stamped4b', gridStepStamped4BR: 'quest_grid_step_stamped4br',
} as const;
export type KernelKey = keyof typeof QUEST_KERNEL_NAMES;
/**
 * The multi-block step's entry pairs (eager, graph: quest.cu's QUEST_GRID_STEP_ENTRIES), by version and,
 * with specializedHeads, by the one scorer the entry carries: h1 / h2 / h4 the light scorer for units of
 * that many heads, h7 / h8 v7's scorer for 7 / 8 heads (h7 with constantPlainHeads), hp v7's for any unit size;
 * h1b / h2b / h4b / h7b / h8b: the same with the batch's page sums as one reduce-scatter (batchedPageSums); h4bf: h4b
 * with fused products (fusedProducts, measurement only); h4br: h4b with the refreshed page's rows loaded 16 at a time
 * (prefetchedRefresh); h4bp: h4b with the score loop's rolling L2 prefetch (rollingPrefetch).
 */
export const QUEST_GRID_STEP_ENTRIES = {
  v5: ['gridStep', 'gridStepAt'], v7: ['gridStepRolled', 'gridStepAtRolled'], v8: ['gridStepLight', 'gridStepAtLight'],
  v8h1: ['gridStepLight1', 'gridStepAtLight1'], v8h2: ['gridStepLight2', 'gridStepAtLight2'], v8h4: ['gridStepLight4', 'gridStepAtLight4'],
  v9: ['gridStepGuess', 'gridStepAtGuess'], v10: ['gridStepEpoch', 'gridStepAtEpoch'],
  v10h1: ['gridStepEpoch1', 'gridStepAtEpoch1'], v10h2: ['gridStepEpoch2', 'gridStepAtEpoch2'], v10h4: ['gridStepEpoch4', 'gridStepAtEpoch4'],
  v10h8: ['gridStepEpoch8', 'gridStepAtEpoch8'], v10hp: ['gridStepEpochP', 'gridStepAtEpochP'],
  v10h1b: ['gridStepEpoch1B', 'gridStepAtEpoch1B'], v10h4b: ['gridStepEpoch4B', 'gridStepAtEpoch4B'],
  v10h2b: ['gridStepEpoch2B', 'gridStepAtEpoch2B'], v10h8b: ['gridStepEpoch8B', 'gridStepAtEpoch8B'],
  v10h7: ['gridStepEpoch7', 'gridStepAtEpoch7'], v10h7b: ['gridStepEpoch7B', 'gridStepAtEpoch7B'],
  v10h4bf: ['gridStepEpoch4BF', 'gridStepAtEpoch4BF'], v10h4br: ['gridStepEpoch4BR', 'gridStepAtEpoch4BR'],
  v10h4bp: ['gridStepEpoch4BP', 'gridStepAtEpoch4BP'],
} as const satisfies Record<string, readonly [KernelKey, KernelKey]>;
export type QuestGridStepEntry = keyof typeof QUEST_GRID_STEP_ENTRIES;
/** The multi-block kernels: every step entry pair, the selects alone, v6's. */
type GridKernel = (typeof QUEST_GRID_STEP_ENTRIES)[QuestGridStepEntry][number] | 'gridSelect' | 'gridSelectGuess' | 'gridSelectEpoch'
  | 'winStep' | 'winStepAt' | 'winSelect';
/** The kernels that stage keys in dynamic shared memory (up to MAX_STAGED_PAGES of them): all but the bounds and scores. */
const STAGING_KERNELS: ReadonlySet<KernelKey> = new Set<KernelKey>([
  'select', 'step', 'stepAt', 'gridStepStamped4B', 'gridStepStamped4BR',
  ...Object.values(QUEST_GRID_STEP_ENTRIES).flat(), 'gridSelect', 'gridSelectGuess', 'gridSelectEpoch', 'winStep', 'winStepAt', 'winSelect',
]);

/**
 * quest.cu's entry groups (its QUEST_ENTRIES_<NAME>, upper-cased names): a module compiled with -DQUEST_ENTRIES=<id>
 * defines only that group's entries, so a QuestKernels compiles only what its options launch (session 10: all ~57
 * entries took 63 s on a fresh H100, paid by every first Quest run). base: v3's kernels and v4's graph step (the method
 * below 4,096 pages, and every fallback of the multi-block steps); v4: v4's eager step (fusedStep); selects: the
 * multi-block selects alone (selectPagesMultiBlock); window: v6; stamped: the phase-stamped steps (phaseStamps); then
 * one group per multi-block step pair, named as in QUEST_GRID_STEP_ENTRIES.
 */
export const QUEST_ENTRY_GROUPS = {
  base: { id: 1, kernels: ['bounds', 'scores', 'select', 'stepAt'] },
  v4: { id: 2, kernels: ['step'] },
  selects: { id: 3, kernels: ['gridSelect', 'gridSelectGuess', 'gridSelectEpoch'] },
  window: { id: 4, kernels: ['winStep', 'winStepAt', 'winSelect'] },
  stamped: { id: 5, kernels: ['gridStepStamped4B', 'gridStepStamped4BR'] },
  ...stepEntryGroups({
    v5: 10, v7: 11, v8: 12, v8h4: 13, v9: 14, v10: 15, v8h1: 16, v8h2: 17, v10h4: 18, v10h1: 19, v10h2: 20, v10h8: 21, v10hp: 22,
    v10h1b: 23, v10h4b: 24, v10h2b: 25, v10h8b: 26, v10h7: 27, v10h7b: 28, v10h4bf: 29, v10h4br: 30, v10h4bp: 31,
  }),
} as const satisfies Record<string, QuestEntryGroup>;
export type QuestEntryGroupName = keyof typeof QUEST_ENTRY_GROUPS;
export interface QuestEntryGroup { id: number; kernels: readonly KernelKey[] }

function stepEntryGroups(ids: Record<QuestGridStepEntry, number>): Record<QuestGridStepEntry, QuestEntryGroup> {
  const groups = {} as Record<QuestGridStepEntry, QuestEntryGroup>;
  for (const entry of Object.keys(ids) as QuestGridStepEntry[]) groups[entry] = { id: ids[entry], kernels: QUEST_GRID_STEP_ENTRIES[entry] };
  return groups;
}

/** The group that defines `key` (each entry is in exactly one: a host test reads quest.cu's guards). */
export function questEntryGroupOf(key: KernelKey): QuestEntryGroupName {
  for (const [name, group] of Object.entries(QUEST_ENTRY_GROUPS) as [QuestEntryGroupName, QuestEntryGroup][]) {
    if (group.kernels.includes(key)) return name;
  }
  throw new Error(`quest: kernel ${key} is in no entry group`);
}

/** The entry groups a QuestKernels with these settings launches from (its prepare() loads them). */
export function questLaunchGroups(k: { fusedStep: boolean; multiBlockStep: boolean; windowStep: boolean; stepEntry: QuestGridStepEntry }): QuestEntryGroupName[] {
  const groups: QuestEntryGroupName[] = ['base'];
  if (k.fusedStep) groups.push('v4');
  if (k.multiBlockStep) groups.push(k.stepEntry);
  if (k.windowStep) groups.push('window');
  return groups;
}

/** The -D defines of the module holding one entry group. */
export function questGroupDefines(group: QuestEntryGroupName): Record<string, number> {
  return { QUEST_ENTRIES: QUEST_ENTRY_GROUPS[group].id };
}

/**
 * Which step entries selectStep / selectStepAt run for these options and units of `unitHeads` query heads.
 * specializedHeads picks the entries that carry only the scorer the unit size needs: v8's light scorer for 1,
 * 2 or 4 heads (other sizes: v7's entries, the scorer v8 runs for them); v10's on the 1-, 2-, 4- or 8-head
 * scorer, or on v7's for other sizes (with constantPlainHeads, 7 heads on v7's with the count a constant); with
 * batchedPageSums, the unit-size entries of 1, 2, 4, 8 (and constantPlainHeads' 7) heads run v10's reduce-scatter
 * twins (the any-size entry stays plain).
 */
export function questGridStepEntry(options: QuestKernelOptions, unitHeads: number): QuestGridStepEntry {
  const specialized = options.specializedHeads ?? false;
  if (options.epochBarriers) {
    if (!specialized) return 'v10';
    const batched = options.batchedPageSums ?? false;
    switch (unitHeads) {
      case 1: return batched ? 'v10h1b' : 'v10h1';
      case 2: return batched ? 'v10h2b' : 'v10h2';
      case 4: return !batched ? 'v10h4' : options.fusedProducts ? 'v10h4bf' : options.prefetchedRefresh ? 'v10h4br' : options.rollingPrefetch ? 'v10h4bp' : 'v10h4b';
      case 8: return batched ? 'v10h8b' : 'v10h8';
      case 7: if (options.constantPlainHeads) return batched ? 'v10h7b' : 'v10h7';
    }
    return 'v10hp';
  }
  if (options.guessedPass) return 'v9';
  if (options.lightScores) {
    if (!specialized) return 'v8';
    return unitHeads === 1 ? 'v8h1' : unitHeads === 2 ? 'v8h2' : unitHeads === 4 ? 'v8h4' : 'v7';
  }
  return options.rolledScores ? 'v7' : 'v5';
}
/** v6's parameter lists (quest.cu's signatures; a host test compares them). */
export const QUEST_WIN_PARAMS = {
  winStep: ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'],
  winStepAt: ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'],
  winSelect: ['ptr', 'i32', 'i32', 'i32', 'i32', 'ptr', 'i32', 'ptr', 'i32', 'i32'],
} as const;
/** v5's step parameter lists (quest.cu's signatures), which v7's rolled and v8's light entries share. */
export const QUEST_GRID_PARAMS = {
  gridStep: ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'],
  gridStepAt: ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'],
} as const;
/** Each entry's parameter kinds (quest.cu's signatures; host tests compare them). */
function kernelParams(key: KernelKey): readonly ParamKind[] {
  switch (key) {
    case 'bounds': return ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'];
    case 'scores': return ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'];
    case 'select': return ['ptr', 'i32', 'i32', 'i32', 'i32', 'ptr', 'i32', 'i32'];
    case 'step': return ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'];
    case 'stepAt': return ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'];
    case 'gridSelect': case 'gridSelectGuess': case 'gridSelectEpoch': return ['ptr', 'i32', 'i32', 'i32', 'i32', 'ptr', 'i32', 'ptr'];
    case 'winStep': case 'winStepAt': case 'winSelect': return QUEST_WIN_PARAMS[key];
    case 'gridStepStamped4B': case 'gridStepStamped4BR': return [...QUEST_GRID_PARAMS.gridStep, 'ptr'];
    default: return key.startsWith('gridStepAt') ? QUEST_GRID_PARAMS.gridStepAt : QUEST_GRID_PARAMS.gridStep;
  }
}

/** quest_select_pages's modes (quest.cu). */
const SELECT_MODE = { fromGlobal: 0, radix8: 1, refined: 2 } as const;

/** The staged selection's algorithm: v3's 8-bit radix select, or top-k.cuh's refined select (v4). */
export type QuestSelection = 'radix8' | 'refined';

export interface QuestKernelOptions {
  /** Rows of at most this many pages are selected from shared memory (tests lower it). */
  maxStagedPages?: number;
  /** Which staged select selectPages runs (default 'radix8', the faster where measured; the fused step always runs 'refined'). */
  selection?: QuestSelection;
  /** selectStep in one launch (v4) instead of three (v3, default). */
  fusedStep?: boolean;
  /**
   * selectStep and selectStepAt as v5: one launch, G blocks per unit scoring and selecting together
   * (not with fusedStep). Needs a QuestStepScratch made with { multiBlock: true }.
   */
  multiBlockStep?: boolean;
  /**
   * selectStep and selectStepAt as v6: v5's blocks and scores, a select of one barrier where the
   * unit's previous key range brackets the k-th key, two where not (not with fusedStep or
   * multiBlockStep). Needs a QuestStepScratch made with { window: true }.
   */
  windowStep?: boolean;
  /** v6 starts from the unit's previous key range (default true); false: from a window over every key (two barriers), to time a miss. */
  windowGuess?: boolean;
  /** v6's step asks L2 for each block's bounds before scoring them (default true; false: v5's score loop as it is). */
  windowPrefetch?: boolean;
  /**
   * With multiBlockStep: v7, v5 whose score loop refills each lane's load slot with the next batch's
   * page as soon as it is scored (v5 asks for a block's next batch only after scoring the whole
   * batch). Same keys, select and lists; not the default until measured. Only with multiBlockStep.
   */
  rolledScores?: boolean;
  /**
   * With rolledScores: v8, v7 whose lanes hold the unit's query in registers (fp32, unpacked once) and
   * multiply each dim by the one bound the query's sign makes the larger, instead of loading the query
   * per page and taking the max of two products; v3's summation order, so the same keys and lists
   * (bounds with min <= max, as updateBounds writes them; a lane whose picked products give NaN is
   * rescored as v3). Units of 1, 2 or 4 query heads; other units score as v7. Not the default until
   * measured. Only with multiBlockStep and rolledScores.
   */
  lightScores?: boolean;
  /**
   * With lightScores: v9, v8 whose select runs its first radix pass on the unit's key range at its
   * previous select (kept in the scratch) before the first barrier, with this step's AND/OR beside it,
   * instead of waiting for the AND/OR first: two unit barriers instead of three where the guess holds,
   * v5's three plus a wasted pass where not. Same cut, same lists. Not the default until measured.
   */
  guessedPass?: boolean;
  /**
   * With guessedPass: v10, v9 whose unit barriers and candidate counter are never reset (each launch
   * counts from where the previous one left them), so no block ends with the exit fence and atomic that
   * put v5's counters back to 0. Same lists. Not the default until measured.
   */
  epochBarriers?: boolean;
  /**
   * With lightScores (v8) or epochBarriers (v10), not v9 alone: run entries that carry only the scorer the
   * unit size needs (questGridStepEntry), not the version's own entries with every scorer and a dispatch
   * over unit sizes (v8's: ~140 KB of SASS; its 4-head entries ~76 KB). v8: its light scorer's entries for
   * units of 1, 2 or 4 heads, v7's entries for others; v10: entries for 1, 2, 4 and 8 heads and one for any
   * other size. Same keys and lists. The method's default for 4-head units since session 7 (v10's 4-head
   * entries: 2.5-6.5 us faster in its step than v8 at 64K-128K); other sizes not the default until measured.
   */
  specializedHeads?: boolean;
  /**
   * With epochBarriers and specializedHeads: units of 1, 2, 4 or 8 heads (and of 7 with constantPlainHeads) sum
   * each batch's four pages over their lanes as one reduce-scatter (5 shuffles and adds per lane instead of 16,
   * one key store issued instead of 4), the same page sums bit for bit; other unit sizes run the any-size entry.
   * The method's default for 1- and 4-head units since session 8; 2 and 8 added in session 9, opt-in until measured.
   */
  batchedPageSums?: boolean;
  /**
   * With epochBarriers and specializedHeads: units of 7 heads (Qwen2.5-7B's GQA) run v7's scorer compiled with the
   * head count a constant (quest_grid_step_epoch7, as the 8-head entry), not the any-size entry with its per-head
   * guard. Same keys and lists. Session 9, opt-in until measured.
   */
  constantPlainHeads?: boolean;
  /**
   * With batchedPageSums: units of 4 heads score each product and its add as one fused multiply-add (quest.cu,
   * quest_lane_score_light's FUSED): the same scores wherever every product q·b lies in fp32's normal range, but not
   * bit for bit for products below 2^-126 or above FLT_MAX. Session 9: a measurement of what the score loop's issue
   * work costs, not a default candidate without a guard for those ranges. Other unit sizes ignore it.
   */
  fusedProducts?: boolean;
  /**
   * With batchedPageSums: units of 4 heads refresh the current page's bounds with its rows requested 16 at a time
   * (quest.cu, quest_refresh_page_prefetched), not in nvcc's unrolled-by-4 loop (~7 dependent round trips per 16-row
   * page, which the refreshing block's first warps pay before they score). The same bounds bit for bit. Session 9,
   * opt-in until measured; not combined with fusedProducts. Other unit sizes ignore it.
   */
  prefetchedRefresh?: boolean;
  /**
   * With batchedPageSums: units of 4 heads ask L2 for each load slot's page two batches ahead when they refill it
   * (prefetch.global.L2: no register), so about two batches of bounds are in flight instead of one. The same loads and
   * keys. Session 9, opt-in until measured; not combined with fusedProducts or prefetchedRefresh.
   */
  rollingPrefetch?: boolean;
  /** v5's and v6's fewest pages per block (default GRID_MIN_PAGES_PER_BLOCK; tests lower it to run many blocks on short rows). */
  gridMinPagesPerBlock?: number;
}

export interface QuestShape {
  numHeads: number; // H
  numKvHeads: number; // Hkv
  headDim: number; // D: 64 or 128
}

/**
 * One layer's page bounds: min and max of each page's keys per KV head, [Hkv, pageCapacity, D] bf16
 * each, covering cache rows [0, coveredRows).
 */
export class DeviceQuestBounds {
  readonly pageMin: DeviceBuffer;
  readonly pageMax: DeviceBuffer;
  readonly pageCapacity: number;
  coveredRows = 0;

  constructor(private readonly rt: CudaRuntime, shape: QuestShape, readonly pageSize: number, cacheCapacity: number) {
    this.pageCapacity = Math.ceil(cacheCapacity / pageSize);
    const bytes = shape.numKvHeads * this.pageCapacity * shape.headDim * 2;
    this.pageMin = rt.pool.acquire(bytes);
    this.pageMax = rt.pool.acquire(bytes);
  }

  release(): void {
    this.rt.pool.release(this.pageMin);
    this.rt.pool.release(this.pageMax);
  }
}

/** Which multi-block scratch a QuestStepScratch carries besides the scores: v5's (multiBlock), v6's (window). */
export interface QuestScratchOptions { multiBlock?: boolean; window?: boolean }

/**
 * One layer's scratch for selectStep: page scores [units, pageCapacity] fp32 and the per-unit block
 * arrival counters (zeroed here; each step's last block puts its counter back to 0); with
 * { multiBlock: true } also v5's per-unit barriers, counts, candidates and histograms
 * ([units, QUEST_GRID_UNIT_WORDS] u32, zeroed here; every v5 launch leaves them zero); with
 * { window: true } v6's ([units, windowUnitWords] u32, zeroed here; every v6 launch leaves its sync
 * words and histograms zero and its key range as the next step's guess).
 */
export class QuestStepScratch {
  readonly scores: DeviceBuffer;
  readonly arrivals: DeviceBuffer;
  readonly grid: DeviceBuffer | null;
  readonly window: DeviceBuffer | null;
  /** v6's words per unit (0 without { window: true }). */
  readonly windowUnitWords: number;

  constructor(private readonly rt: CudaRuntime, readonly units: number, readonly pageCapacity: number, options: QuestScratchOptions = {}) {
    this.scores = rt.pool.acquire(Math.max(1, units * pageCapacity) * 4);
    this.arrivals = rt.pool.acquire(units * 4);
    rt.cuda.fill32Async(this.arrivals.ptr, 0, units, rt.stream);
    this.grid = null;
    if (options.multiBlock) {
      this.grid = rt.pool.acquire(units * QUEST_GRID_UNIT_WORDS * 4);
      rt.cuda.fill32Async(this.grid.ptr, 0, units * QUEST_GRID_UNIT_WORDS, rt.stream);
    }
    this.window = null;
    this.windowUnitWords = 0;
    if (options.window) {
      this.windowUnitWords = questWindowUnitWords(pageCapacity);
      this.window = rt.pool.acquire(units * this.windowUnitWords * 4);
      rt.cuda.fill32Async(this.window.ptr, 0, units * this.windowUnitWords, rt.stream);
    }
  }

  release(): void {
    this.rt.pool.release(this.scores);
    this.rt.pool.release(this.arrivals);
    if (this.grid) this.rt.pool.release(this.grid);
    if (this.window) this.rt.pool.release(this.window);
  }
}

export interface QuestStepArgs {
  /** The step's query, [H, D] bf16. */
  q: DevicePtr;
  bounds: DeviceQuestBounds;
  cache: DeviceLayerKvCache;
  /** Cache rows the bounds must cover after the step (position + 1). */
  rows: number;
  /** Pages scored: [0, pages), those before the current one. */
  pages: number;
  /** Pages to keep (k >= pages: all, unscored; k <= 0: none). */
  k: number;
  scratch: QuestStepScratch;
  segments: SegmentLists;
  /**
   * Phase clocks (session 9, bench/quest-phases.ts): with v10's batched 4-head entry (stepEntry v10h4b, or v10h4br) and
   * a multi-block launch, the step runs quest_grid_step_stamped4b (stamped4br), the same step that also writes each block's
   * phase stamps here ([units, QUEST_GRID_MAX_BLOCKS, 2, QUEST_PHASE_SLOTS] u64, QUEST_PHASE_STAMP_BYTES per unit).
   * For timing only; refused with other entries.
   */
  phaseStamps?: DevicePtr;
}

/** quest.cu's QUEST_PHASE_* slots of a block's stamps (globaltimer ns; the same slots + QUEST_PHASE_SLOTS: clock64). */
export const QUEST_PHASES = {
  start: 0, scored: 1, atFirstBarrier: 2, pastFirstBarrier: 3, firstPassRead: 4, atFinalBarrier: 5, pastFinalBarrier: 6, end: 7,
  barriers: 8, guessHeld: 9, allScored: 10,
} as const;
export const QUEST_PHASE_SLOTS = 11;
/** Bytes of phase stamps per unit (selectStep's phaseStamps). */
export const QUEST_PHASE_STAMP_BYTES = QUEST_GRID_MAX_BLOCKS * 2 * QUEST_PHASE_SLOTS * 8;

/**
 * A decode step's selection as a captured graph replays it (QuestKernels.selectStepAt): the position
 * p read from device memory, the pages before p's page scored, budgets[p] of them kept, p's page
 * refreshed up to row p (already in the cache when the kernel runs).
 */
export interface QuestGraphStepArgs {
  /** The step's query, [H, D] bf16. */
  q: DevicePtr;
  bounds: DeviceQuestBounds;
  cache: DeviceLayerKvCache;
  /** int32 on the device: the new token's position p. */
  position: DevicePtr;
  /** int32 [> any replayed p] on the device: pages to keep at p (the host's questPagesFor). */
  budgets: DevicePtr;
  /** The most pages any replayed step scores (floor(last position / pageSize)): fixes grid and shared memory. */
  maxPages: number;
  scratch: QuestStepScratch;
  segments: SegmentLists;
}

export class QuestKernels {
  /** The entries loaded so far, each from its group's module (prepare(): this instance's own; others on first use). */
  private readonly kernels = new Map<KernelKey, CudaKernel>();
  private prepared = false;
  /** Query heads whose scores one unit sums: the GQA group with share_pages, else 1. */
  readonly unitHeads: number;
  readonly units: number;
  private readonly maxStagedPages: number;
  private readonly selection: QuestSelection;
  /** Whether selectStep runs v4 (one launch) instead of v3. */
  readonly fusedStep: boolean;
  /** Whether selectStep and selectStepAt run v5 (the multi-block step). */
  readonly multiBlockStep: boolean;
  /** Whether selectStep and selectStepAt run v6 (the windowed multi-block step). */
  readonly windowStep: boolean;
  private readonly windowGuess: boolean;
  private readonly windowPrefetch: boolean;
  /** Whether v5's steps run with rolled score loads (v7). */
  readonly rolledScores: boolean;
  /** Whether v7's steps run with the light per-page scoring (v8). */
  readonly lightScores: boolean;
  /** Whether v8's steps (and the multi-block select alone) start with a pass on the previous key range (v9). */
  readonly guessedPass: boolean;
  /** Whether v9's barriers are never reset (v10). */
  readonly epochBarriers: boolean;
  /** The multi-block step entries selectStep and selectStepAt run (questGridStepEntry). */
  readonly stepEntry: QuestGridStepEntry;
  /**
   * v5 (v6) blocks one multiprocessor holds, per kernel, at the most dynamic shared memory a launch asks
   * for (a lower bound for every launch): queried in prepare(), so that no driver query runs while a
   * graph is being captured.
   */
  private readonly residentPerSM = new Map<GridKernel, number>();
  private readonly gridMinPagesPerBlock: number;

  constructor(
    private readonly rt: CudaRuntime, readonly shape: QuestShape, readonly pageSize: number, readonly sharePages: boolean,
    options: QuestKernelOptions = {},
  ) {
    this.maxStagedPages = Math.min(options.maxStagedPages ?? MAX_STAGED_PAGES, MAX_STAGED_PAGES);
    this.selection = options.selection ?? 'radix8';
    this.fusedStep = options.fusedStep ?? false;
    this.multiBlockStep = options.multiBlockStep ?? false;
    this.windowStep = options.windowStep ?? false;
    this.windowGuess = options.windowGuess ?? true;
    this.windowPrefetch = options.windowPrefetch ?? true;
    this.rolledScores = options.rolledScores ?? false;
    if (this.rolledScores && !this.multiBlockStep) throw new Error('quest: rolledScores (v7) is an option of the multi-block step: set multiBlockStep too');
    this.lightScores = options.lightScores ?? false;
    if (this.lightScores && !this.rolledScores) throw new Error('quest: lightScores (v8) is an option of the rolled multi-block step (v7): set multiBlockStep and rolledScores too');
    this.guessedPass = options.guessedPass ?? false;
    if (this.guessedPass && !this.lightScores) throw new Error('quest: guessedPass (v9) is an option of the light multi-block step (v8): set multiBlockStep, rolledScores and lightScores too');
    this.epochBarriers = options.epochBarriers ?? false;
    if (this.epochBarriers && !this.guessedPass) throw new Error('quest: epochBarriers (v10) is an option of v9: set multiBlockStep, rolledScores, lightScores and guessedPass too');
    const specializedHeads = options.specializedHeads ?? false;
    if (specializedHeads && (!this.lightScores || (this.guessedPass && !this.epochBarriers))) {
      throw new Error('quest: specializedHeads is an option of v8 (multiBlockStep, rolledScores, lightScores) and of v10 (also guessedPass and epochBarriers)');
    }
    if (options.batchedPageSums && !(this.epochBarriers && specializedHeads)) {
      throw new Error('quest: batchedPageSums is an option of v10\'s unit-size entries: set epochBarriers and specializedHeads too');
    }
    if (options.rollingPrefetch && (!options.batchedPageSums || options.fusedProducts || options.prefetchedRefresh)) {
      throw new Error('quest: rollingPrefetch is an option of v10\'s batched unit-size entries without fusedProducts or prefetchedRefresh');
    }
    if (options.prefetchedRefresh && (!options.batchedPageSums || options.fusedProducts)) {
      throw new Error('quest: prefetchedRefresh is an option of v10\'s batched unit-size entries without fusedProducts: set batchedPageSums (and epochBarriers, specializedHeads) too');
    }
    if (options.fusedProducts && !options.batchedPageSums) {
      throw new Error('quest: fusedProducts is an option of v10\'s batched unit-size entries: set batchedPageSums (and epochBarriers, specializedHeads) too');
    }
    if (options.constantPlainHeads && !(this.epochBarriers && specializedHeads)) {
      throw new Error('quest: constantPlainHeads is an option of v10\'s unit-size entries: set epochBarriers and specializedHeads too');
    }
    this.gridMinPagesPerBlock = options.gridMinPagesPerBlock ?? GRID_MIN_PAGES_PER_BLOCK;
    if (!Number.isInteger(this.gridMinPagesPerBlock) || this.gridMinPagesPerBlock < 1) {
      throw new Error(`quest: gridMinPagesPerBlock must be a positive integer (got ${this.gridMinPagesPerBlock})`);
    }
    if ([this.fusedStep, this.multiBlockStep, this.windowStep].filter(Boolean).length > 1) {
      throw new Error('quest: fusedStep (v4), multiBlockStep (v5) and windowStep (v6) are different steps: choose one');
    }
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (D !== 64 && D !== 128) throw new Error(`quest: head dim ${D} unsupported (64 or 128)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`quest: ${H} query heads are not a multiple of ${Hkv} KV heads`);
    if (!Number.isInteger(pageSize) || pageSize < 1) throw new Error(`quest: page size must be a positive integer (got ${pageSize})`);
    const g = H / Hkv;
    if (sharePages && g > 8) throw new Error(`quest: GQA group ${g} > 8 unsupported with shared pages`);
    this.unitHeads = sharePages ? g : 1;
    this.units = sharePages ? Hkv : H;
    this.stepEntry = questGridStepEntry(options, this.unitHeads);
  }

  /**
   * Loads (compiling on a cold cache) the entry groups this instance's options launch: base (v3, v4's graph step and
   * every fallback), v4's eager step with fusedStep, the step entry pair with multiBlockStep, v6 with windowStep; and
   * the residency of its multi-block steps, so that nothing is compiled or queried while a graph is captured. Entries
   * outside these (the selects alone, the stamped steps, another version's pair for gridBlocks) load on first use.
   */
  prepare(): void {
    if (this.prepared) return;
    for (const group of questLaunchGroups(this)) for (const key of QUEST_ENTRY_GROUPS[group].kernels) this.kernel(key);
    if (this.multiBlockStep) for (const key of QUEST_GRID_STEP_ENTRIES[this.stepEntry]) this.residency(key);
    if (this.windowStep) for (const key of ['winStep', 'winStepAt', 'winSelect'] as const) this.residency(key);
    this.prepared = true;
  }

  /** Entry `key`, from its group's module (compiled once per process and cached on disk by the runtime). */
  private kernel(key: KernelKey): CudaKernel {
    let kernel = this.kernels.get(key);
    if (!kernel) {
      const mod = this.rt.module('quest.cu', questGroupDefines(questEntryGroupOf(key)));
      kernel = mod.kernel(QUEST_KERNEL_NAMES[key], [...kernelParams(key)]);
      // The launch raises the dynamic limit only past 48 KB of dynamic memory, but the 48 KB default
      // also counts the kernels' ~12 KB of static scratch: allow the largest staged row from the start.
      if (STAGING_KERNELS.has(key)) kernel.ensureSharedBytes(MAX_STAGED_PAGES * 4);
      this.kernels.set(key, kernel);
    }
    return kernel;
  }

  /** Folds cache rows [bounds.coveredRows, rows) into the bounds (only the pages they touch). */
  updateBounds(bounds: DeviceQuestBounds, cache: DeviceLayerKvCache, rows: number): void {
    if (rows > cache.length) throw new Error(`quest: bounds over ${rows} rows, the cache holds ${cache.length}`);
    if (Math.ceil(rows / this.pageSize) > bounds.pageCapacity) throw new Error(`quest: ${rows} rows exceed the bounds' ${bounds.pageCapacity} pages`);
    if (rows <= bounds.coveredRows) return;
    const P = this.pageSize;
    const firstPage = Math.floor(bounds.coveredRows / P);
    const pages = Math.ceil(rows / P) - firstPage;
    this.prepare();
    const kernel = this.kernel('bounds');
    kernel.launch(
      { grid: [pages, this.shape.numKvHeads, 1], block: [this.shape.headDim, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [cache.keys.ptr, bounds.pageMin.ptr, bounds.pageMax.ptr, this.shape.headDim, cache.capacity, bounds.pageCapacity, P, firstPage, rows],
    );
    bounds.coveredRows = rows;
  }

  /**
   * Scores pages [0, pages) for the query q ([H, D] bf16) into scores ([units, scoreStride] fp32).
   */
  scorePages(q: DevicePtr, bounds: DeviceQuestBounds, pages: number, scores: DevicePtr, scoreStride: number): void {
    if (pages <= 0) return;
    if (pages > scoreStride) throw new Error(`quest: ${pages} pages exceed the score row of ${scoreStride}`);
    this.prepare();
    const kernel = this.kernel('scores');
    const pagesPerBlock = SCORE_THREADS / (this.shape.headDim / 8);
    const g = this.shape.numHeads / this.shape.numKvHeads;
    kernel.launch(
      { grid: [Math.ceil(pages / pagesPerBlock), this.units, 1], block: [SCORE_THREADS, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [q, bounds.pageMin.ptr, bounds.pageMax.ptr, scores, this.shape.headDim, g, this.unitHeads, bounds.pageCapacity, pages, scoreStride],
    );
  }

  /**
   * Writes per unit the top k of pages [0, pages) (all of them when k >= pages, scores unread) as
   * segments of pageSize rows, ascending, into `segments` (room for at least min(k, pages)).
   */
  selectPages(scores: DevicePtr, scoreStride: number, pages: number, k: number, segments: SegmentLists): void {
    if (segments.units !== this.units) throw new Error(`quest: ${segments.units} segment lists for ${this.units} units`);
    if (Math.min(k, pages) > segments.maxSegments) throw new Error(`quest: ${Math.min(k, pages)} pages exceed the lists' ${segments.maxSegments} segments`);
    this.prepare();
    const select = this.kernel('select');
    const staged = pages <= this.maxStagedPages;
    const mode = staged ? SELECT_MODE[this.selection] : SELECT_MODE.fromGlobal;
    select.launch(
      { grid: [this.units, 1, 1], block: [SELECT_THREADS, 1, 1], sharedBytes: staged ? Math.max(4, pages * 4) : 0, stream: this.rt.stream },
      [scores, scoreStride, pages, Math.max(0, k), this.pageSize, segments.ptr, segments.stride, mode],
    );
  }

  /**
   * v5's blocks per unit G for rows of `pages` pages: each block at least GRID_MIN_PAGES_PER_BLOCK
   * pages, at most QUEST_GRID_MAX_BLOCKS, and all units · G blocks resident at once (they wait for each
   * other at barriers); 1 (no block waits for another) where two per unit would not all fit.
   */
  gridBlocks(pages: number, kernel: GridKernel): number {
    this.prepare();
    const resident = this.residency(kernel) * this.rt.cuda.info.multiprocessors;
    return questGridBlocks(pages, this.units, resident, this.gridMinPagesPerBlock);
  }

  /** Blocks of `key` one multiprocessor holds at the most dynamic shared memory a launch asks for (queried once). */
  private residency(key: GridKernel): number {
    let perSM = this.residentPerSM.get(key);
    if (perSM === undefined) {
      perSM = this.kernel(key).maxActiveBlocksPerSM(GRID_THREADS, this.maxStagedPages * 4);
      this.residentPerSM.set(key, perSM);
    }
    return perSM;
  }

  /** Whether v5 selects from rows of `pages` pages (a block's chunk of keys fits in shared memory). */
  private gridFits(pages: number, kernel: GridKernel): boolean {
    return Math.ceil(pages / this.gridBlocks(pages, kernel)) <= this.maxStagedPages;
  }

  /**
   * The multi-block select alone over given score rows ([units, scoreStride] fp32): the lists
   * selectPages writes, from G blocks per unit; v5's (quest_grid_select, scratch made with
   * { multiBlock: true }) or, with windowStep, v6's (quest_win_select, scratch made with { window: true },
   * whose guess it reads and updates as a step does). For tests and the per-part timing.
   */
  selectPagesMultiBlock(scores: DevicePtr, scoreStride: number, pages: number, k: number, segments: SegmentLists, scratch: QuestStepScratch): void {
    if (segments.units !== this.units) throw new Error(`quest: ${segments.units} segment lists for ${this.units} units`);
    if (Math.min(k, pages) > segments.maxSegments) throw new Error(`quest: ${Math.min(k, pages)} pages exceed the lists' ${segments.maxSegments} segments`);
    if (pages > scoreStride) throw new Error(`quest: ${pages} pages exceed the score row of ${scoreStride}`);
    const kernel = this.windowStep ? 'winSelect' : this.epochBarriers ? 'gridSelectEpoch' : this.guessedPass ? 'gridSelectGuess' : 'gridSelect';
    if (!this.gridFits(pages, kernel)) throw new Error(`quest: a block's chunk of ${pages} pages exceeds the ${this.maxStagedPages} staged in shared memory`);
    const G = this.gridBlocks(pages, kernel);
    const launch = { grid: [G, this.units, 1] as [number, number, number], block: [GRID_THREADS, 1, 1] as [number, number, number], sharedBytes: gridKeysBytes(pages, G), stream: this.rt.stream };
    if (this.windowStep) {
      const win = this.windowScratch(scratch, pages);
      this.kernel('winSelect').launch(launch, [scores, scoreStride, pages, Math.max(0, k), this.pageSize, segments.ptr, segments.stride, win, scratch.windowUnitWords, this.windowGuess ? 1 : 0]);
      return;
    }
    this.kernel(kernel).launch(launch, [scores, scoreStride, pages, Math.max(0, k), this.pageSize, segments.ptr, segments.stride, this.gridScratch(scratch)]);
  }

  private gridScratch(scratch: QuestStepScratch): DevicePtr {
    if (scratch.units !== this.units) throw new Error(`quest: step scratch of ${scratch.units} units for ${this.units} units`);
    if (!scratch.grid) throw new Error('quest: the multi-block step needs a QuestStepScratch made with { multiBlock: true }');
    return scratch.grid.ptr;
  }

  /** v6's scratch for rows of up to `pages` pages (its sorted keys take 2 words per page). */
  private windowScratch(scratch: QuestStepScratch, pages: number): DevicePtr {
    if (scratch.units !== this.units) throw new Error(`quest: step scratch of ${scratch.units} units for ${this.units} units`);
    if (!scratch.window) throw new Error('quest: the windowed step (v6) needs a QuestStepScratch made with { window: true }');
    if (pages > scratch.pageCapacity) throw new Error(`quest: ${pages} pages exceed the window scratch's ${scratch.pageCapacity}`);
    return scratch.window.ptr;
  }

  /** The scratch options selectStep and selectStepAt of these kernels need. */
  get scratchOptions(): QuestScratchOptions {
    return { multiBlock: this.multiBlockStep, window: this.windowStep };
  }

  /**
   * A decode step's selection: the bounds brought up to `rows`, pages [0, pages) scored and the top k
   * written to `segments` as selectPages does. Three launches (two when nothing is scored: k <= 0 or
   * k >= pages); with fusedStep (v4), multiBlockStep (v5) or windowStep (v6), one launch when the rows to
   * fold lie in one page not scored in this step (every step after the first) and the keys (v4: the
   * row's, v5 and v6: a block's chunk) fit in shared memory.
   */
  selectStep(a: QuestStepArgs): void {
    const { bounds, cache, rows, pages, k, scratch, segments } = a;
    const P = this.pageSize;
    if (scratch.units !== this.units || scratch.pageCapacity < pages) {
      throw new Error(`quest: step scratch of ${scratch.units} units x ${scratch.pageCapacity} pages for ${this.units} units x ${pages} pages`);
    }
    if (segments.units !== this.units) throw new Error(`quest: ${segments.units} segment lists for ${this.units} units`);
    if (Math.min(k, pages) > segments.maxSegments) throw new Error(`quest: ${Math.min(k, pages)} pages exceed the lists' ${segments.maxSegments} segments`);
    if (!Number.isInteger(pages) || pages < 0 || pages * P > rows) throw new Error(`quest: ${pages} scored pages of ${P} rows for ${rows} rows`);
    if (rows > cache.length) throw new Error(`quest: bounds over ${rows} rows, the cache holds ${cache.length}`);
    if (Math.ceil(rows / P) > bounds.pageCapacity) throw new Error(`quest: ${rows} rows exceed the bounds' ${bounds.pageCapacity} pages`);
    const take = Math.max(0, Math.min(k, pages));
    const scored = take > 0 && take < pages;
    const grid = this.multiBlockStep ? this.gridScratch(scratch) : this.windowStep ? this.windowScratch(scratch, pages) : 0n;
    const stepKernel = QUEST_GRID_STEP_ENTRIES[this.stepEntry][0];
    const fits = this.multiBlockStep ? this.gridFits(pages, stepKernel) : this.windowStep ? this.gridFits(pages, 'winStep') : pages <= this.maxStagedPages;
    if (!(this.fusedStep || this.multiBlockStep || this.windowStep) || (scored && !fits)) {
      this.updateBounds(bounds, cache, rows);
      if (scored) this.scorePages(a.q, bounds, pages, scratch.scores.ptr, scratch.pageCapacity);
      this.selectPages(scratch.scores.ptr, scratch.pageCapacity, pages, k, segments);
      return;
    }
    let refreshPage = -1;
    if (rows > bounds.coveredRows) {
      const firstPage = Math.floor(bounds.coveredRows / P);
      if (firstPage === Math.ceil(rows / P) - 1 && firstPage >= pages) {
        refreshPage = firstPage;
        bounds.coveredRows = rows;
      } else {
        this.updateBounds(bounds, cache, rows);
      }
    }
    const g = this.shape.numHeads / this.shape.numKvHeads;
    if (this.multiBlockStep) {
      const G = scored ? this.gridBlocks(pages, stepKernel) : 1;
      const params = [a.q, bounds.pageMin.ptr, bounds.pageMax.ptr, cache.keys.ptr, grid, segments.ptr,
        this.shape.headDim, g, this.unitHeads, cache.capacity, bounds.pageCapacity, pages, segments.stride, take, P, refreshPage, rows];
      const launch: LaunchConfig = { grid: [G, this.units, 1], block: [GRID_THREADS, 1, 1], sharedBytes: scored ? gridKeysBytes(pages, G) : 0, stream: this.rt.stream };
      if (a.phaseStamps !== undefined) {
        if (this.stepEntry !== 'v10h4b' && this.stepEntry !== 'v10h4br') {
          throw new Error(`quest: phase stamps come with the v10h4b and v10h4br step entries (this one runs ${this.stepEntry})`);
        }
        // The stamped entries are _epoch4b / _epoch4br with a few stores more: the same residency (one 512-thread block per SM), so the same G.
        this.kernel(this.stepEntry === 'v10h4b' ? 'gridStepStamped4B' : 'gridStepStamped4BR').launch(launch, [...params, a.phaseStamps]);
        return;
      }
      this.kernel(stepKernel).launch(launch, params);
      return;
    }
    if (this.windowStep) {
      const G = scored ? this.gridBlocks(pages, 'winStep') : 1;
      this.kernel('winStep').launch(
        { grid: [G, this.units, 1], block: [GRID_THREADS, 1, 1], sharedBytes: scored ? gridKeysBytes(pages, G) : 0, stream: this.rt.stream },
        [a.q, bounds.pageMin.ptr, bounds.pageMax.ptr, cache.keys.ptr, grid, segments.ptr,
          this.shape.headDim, g, this.unitHeads, cache.capacity, bounds.pageCapacity, pages, segments.stride, take, P, refreshPage, rows,
          scratch.windowUnitWords, this.windowGuess ? 1 : 0, this.windowPrefetch ? 1 : 0],
      );
      return;
    }
    const step = this.kernel('step');
    const chunks = scored ? Math.ceil(pages / STEP_PAGES_PER_BLOCK) : 1;
    step.launch(
      { grid: [chunks, this.units, 1], block: [STEP_THREADS, 1, 1], sharedBytes: scored ? pages * 4 : 0, stream: this.rt.stream },
      [a.q, bounds.pageMin.ptr, bounds.pageMax.ptr, cache.keys.ptr, scratch.scores.ptr, scratch.arrivals.ptr, segments.ptr,
        this.shape.headDim, g, this.unitHeads, cache.capacity, bounds.pageCapacity, pages, scratch.pageCapacity, segments.stride,
        take, P, refreshPage, rows],
    );
  }

  /** The multi-block graph step's entry (questGridStepEntry's graph half). */
  private gridStepAtKernel(): GridKernel {
    return QUEST_GRID_STEP_ENTRIES[this.stepEntry][1];
  }

  /** Whether selectStepAt serves steps scoring up to maxPages pages (their keys, v5: a block's chunk of them, fit in shared memory). */
  graphStepFits(maxPages: number): boolean {
    if (this.multiBlockStep) return this.gridFits(maxPages, this.gridStepAtKernel());
    if (this.windowStep) return this.gridFits(maxPages, 'winStepAt');
    return maxPages <= this.maxStagedPages;
  }

  /**
   * Queues the graph step's selection (see QuestGraphStepArgs) as one launch: capturable (call
   * prepare() before the capture). Every replayed position must satisfy p < bounds' pages · pageSize
   * and p < cache.capacity; grid and shared memory are sized for maxPages.
   */
  selectStepAt(a: QuestGraphStepArgs): void {
    const { bounds, cache, maxPages, scratch, segments } = a;
    if (!Number.isInteger(maxPages) || maxPages < 0) throw new Error(`quest: maxPages must be a non-negative integer (got ${maxPages})`);
    if (!this.graphStepFits(maxPages)) throw new Error(`quest: graph steps over ${maxPages} pages exceed the ${this.maxStagedPages} staged in shared memory`);
    if (scratch.units !== this.units || scratch.pageCapacity < maxPages) {
      throw new Error(`quest: step scratch of ${scratch.units} units x ${scratch.pageCapacity} pages for ${this.units} units x ${maxPages} pages`);
    }
    if (segments.units !== this.units) throw new Error(`quest: ${segments.units} segment lists for ${this.units} units`);
    if (segments.maxSegments < maxPages) throw new Error(`quest: ${maxPages} pages exceed the lists' ${segments.maxSegments} segments`);
    if (maxPages + 1 > bounds.pageCapacity) throw new Error(`quest: steps up to page ${maxPages} exceed the bounds' ${bounds.pageCapacity} pages`);
    for (const [name, ptr] of [['position', a.position], ['budgets', a.budgets]] as const) {
      if (ptr === 0n || ptr % 4n !== 0n) throw new Error(`quest: ${name} must be an aligned int32 device pointer`);
    }
    const g = this.shape.numHeads / this.shape.numKvHeads;
    if (this.multiBlockStep) {
      const atKernel = this.gridStepAtKernel();
      const G = this.gridBlocks(maxPages, atKernel);
      this.kernel(atKernel).launch(
        { grid: [G, this.units, 1], block: [GRID_THREADS, 1, 1], sharedBytes: gridKeysBytes(maxPages, G), stream: this.rt.stream },
        [a.q, bounds.pageMin.ptr, bounds.pageMax.ptr, cache.keys.ptr, this.gridScratch(scratch), segments.ptr, a.position, a.budgets,
          this.shape.headDim, g, this.unitHeads, cache.capacity, bounds.pageCapacity, segments.stride, this.pageSize],
      );
      return;
    }
    if (this.windowStep) {
      const G = this.gridBlocks(maxPages, 'winStepAt');
      this.kernel('winStepAt').launch(
        { grid: [G, this.units, 1], block: [GRID_THREADS, 1, 1], sharedBytes: gridKeysBytes(maxPages, G), stream: this.rt.stream },
        [a.q, bounds.pageMin.ptr, bounds.pageMax.ptr, cache.keys.ptr, this.windowScratch(scratch, maxPages), segments.ptr, a.position, a.budgets,
          this.shape.headDim, g, this.unitHeads, cache.capacity, bounds.pageCapacity, segments.stride, this.pageSize,
          scratch.windowUnitWords, this.windowGuess ? 1 : 0, this.windowPrefetch ? 1 : 0],
      );
      return;
    }
    const stepAt = this.kernel('stepAt');
    stepAt.launch(
      { grid: [Math.max(1, Math.ceil(maxPages / STEP_PAGES_PER_BLOCK)), this.units, 1], block: [STEP_THREADS, 1, 1], sharedBytes: maxPages * 4, stream: this.rt.stream },
      [a.q, bounds.pageMin.ptr, bounds.pageMax.ptr, cache.keys.ptr, scratch.scores.ptr, scratch.arrivals.ptr, segments.ptr, a.position, a.budgets,
        this.shape.headDim, g, this.unitHeads, cache.capacity, bounds.pageCapacity, scratch.pageCapacity, segments.stride, this.pageSize],
    );
  }
}

/**
 * v5's blocks per unit: at least minPagesPerBlock pages each, at most QUEST_GRID_MAX_BLOCKS, all
 * units · G blocks within `residentBlocks` (the device's blocks at once), and 1 where that leaves
 * fewer than 2 (a single block per unit waits for no other).
 */
export function questGridBlocks(pages: number, units: number, residentBlocks: number, minPagesPerBlock: number): number {
  const G = Math.min(QUEST_GRID_MAX_BLOCKS, Math.ceil(pages / minPagesPerBlock), Math.floor(residentBlocks / units));
  return Math.max(1, G);
}

/** Dynamic shared memory of a v5 block: its chunk of ceil(pages / G) keys. */
function gridKeysBytes(pages: number, G: number): number {
  return Math.max(4, Math.ceil(pages / G) * 4);
}
