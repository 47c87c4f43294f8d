/**
 * Launcher for vertical-slash-search.cu: the Vertical-Slash family's count searches for a target
 * sparsity on the device: each score row ranked once (vs_rank_rows), then the whole search in one
 * cooperative launch and one small download per layer. The launch is vs_count_search (one probe at a
 * time, the default) or, with `probeLevels` L, vs_count_search_batched: the next L levels of the
 * search's decision tree (up to 2^L - 1 probes) answered at once, the same probes' answers in the
 * same order, so the same result in about 1/L of the rounds (for few heads a round costs about one
 * probe: the GPU is otherwise idle), its walks stepping once per run of kept diagonals.
 *   counts(): Vertical-Slash's rule (vertical-slash-counts.ts chooseVerticalSlashCounts), the same
 *             probes in the same order, every probe's exact layer pairs counted on the device;
 *   alpha():  FlexPrefill's alpha bisection (flexprefill.ts thresholdNearestTarget) over the coverage
 *             curves of kernels/flexprefill-coverage.cu.
 * The host versions stay (VerticalSlashIndexBuilder.countPairs probes them one round trip at a time):
 * the tests hold the two to the same answers.
 */
import { causalPairs } from '../../../methods/options.js';
import { FORCED_COLUMNS, FORCED_DIAGONALS } from '../../../methods/vertical-slash-prefill.js';
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import { GrowableDeviceBuffer } from '../vertical-slash-layout.js';
import { doubleHalves } from './flexprefill-coverage.js';
import type { VerticalSlashScores } from './vertical-slash-estimate.js';
import { PATTERN_BLOCK } from './vertical-slash-index.js';
import { VS_SEARCH_ENTRY_PARAMS, type VsSearchEntry, vsSearchEntryGroupOf, vsSearchGroupDefines } from './vertical-slash-search-groups.js';

const THREADS = 512;
const RANK_THREADS = 1024;
/** The chunked ranking's blocks and items per chunk (vertical-slash-search.cu CHUNK_THREADS, RANK_CHUNK). */
const CHUNK_THREADS = 256;
const RANK_CHUNK = 2048;
/** The batched kernel's MAX_LEVELS and MAX_BATCH_COUNTS (probes x 2H counts one round keeps). */
export const MAX_PROBE_LEVELS = 5;
const MAX_BATCH = 2 ** MAX_PROBE_LEVELS - 1;
const MAX_BATCH_COUNTS = 1024;
// State buffer: totals u64[3] at 0, changed u32[3] at 24, barrier u32 at 36, result f64[5] at 40,
// then counts and selected i32[2H] each.
const CHANGED_AT = 24;
const BARRIER_AT = 36;
const RESULT_AT = 40;
const RESULT_WORDS = 5;
const COUNTS_AT = RESULT_AT + 8 * RESULT_WORDS;
// The batched kernel's state: totals u64[3, MAX_BATCH] at 0, barrier u32, result f64[8] (the rounds,
// then the hand-off's two slots: selectionHandOff), then selected i32[P, 2H], then the hand-off's
// answer counts i32[2H].
const BATCHED_BARRIER_AT = 8 * 3 * MAX_BATCH;
const BATCHED_RESULT_AT = BATCHED_BARRIER_AT + 8;
const BATCHED_RESULT_WORDS = RESULT_WORDS + 3;
const BATCHED_SELECTED_AT = BATCHED_RESULT_AT + 8 * BATCHED_RESULT_WORDS;

/** The most decision-tree levels the batched kernel takes per round with this many query heads (0: none). */
export function maxProbeLevels(numHeads: number): number {
  let L = 0;
  while (L < MAX_PROBE_LEVELS && (2 ** (L + 1) - 1) * 2 * numHeads <= MAX_BATCH_COUNTS) L++;
  return L;
}

/** Device bytes 'auto' lets the batched search's per-probe slots take (selections and run starts). */
export const AUTO_SLOT_BUDGET_BYTES = 256 * 2 ** 20;

/**
 * 'auto' takes at most AUTO_MAX_LEVELS levels, and at most as many as keep (2^L - 1) probes x H heads
 * within AUTO_MAX_PROBE_HEADS: more probes per round cost more than the rounds they save. Measured on
 * the H100 (docs/perf.md, "Session 5: estimation on small models", s = 0.9 at 16K): H = 4 fastest at
 * L = 4 (L = 5 7% slower), H = 32 at L = 3 (224 probe-heads; L = 4, 480, 22% slower).
 */
export const AUTO_MAX_LEVELS = 4;
export const AUTO_MAX_PROBE_HEADS = 256;

/**
 * probeLevels 'auto' for one search: the most levels the kernel takes with H heads, up to AUTO_MAX_LEVELS
 * and AUTO_MAX_PROBE_HEADS probe-heads a round, whose 2^L - 1 probes' slots (3 x [H, n] int32 each) fit
 * `budget` bytes; at least 1 unless the batched kernel takes none (0: the one-probe kernel runs).
 */
export function autoProbeLevels(numHeads: number, n: number, budget = AUTO_SLOT_BUDGET_BYTES): number {
  let L = Math.min(maxProbeLevels(numHeads), AUTO_MAX_LEVELS);
  while (L > 1 && ((2 ** L - 1) * numHeads * n * 12 > budget || (2 ** L - 1) * numHeads > AUTO_MAX_PROBE_HEADS)) L--;
  return L;
}

export interface CountSearchOptions {
  /**
   * Levels of the decision tree answered per round (1..5; 2^L - 1 probes at once, each with its own
   * [H, n] selection slots), or 'auto' (autoProbeLevels, per search); absent: vs_count_search, one
   * probe at a time.
   */
  probeLevels?: number | 'auto';
  /**
   * The hand-off (session 6, not the default until measured): the search keeps its ranks for the
   * index builder (ranksOf; VerticalSlashIndexBuilder.build's `ranked`: one compaction launch instead
   * of a radix select per head and kind, no count upload, no host wait before it), and waits for the
   * stream before ranking only when a scratch buffer must grow (else its launches queue behind the
   * estimate). The same ranks and counts, so the same selection (GPU tests hold it to the CPU's).
   */
  deviceHandOff?: boolean;
  /**
   * Rank each score row with many blocks (session 6, not the default until measured): vs_rank_chunks
   * sorts 2048-item chunks in shared memory, vs_rank_merge adds every other chunk's count of preceding
   * items (binary searches of its sorted keys); the same ranks as vs_rank_rows' one block per row.
   */
  chunkedRanking?: boolean;
  /**
   * Threads sharing each 64-row block's walk in the batched search (session 6, not the default until
   * measured): a power of two in [1, 32], or 'auto' (autoWalkLanes: the most whose walk units all fit
   * the resident grid at once). vs_count_search_batched_lanes cuts a block's walk where a range
   * certainly restarts (kept offsets >= 128 apart) and each thread walks the pieces starting in its
   * share: the last blocks' walks (a run and a range per spread-out kept diagonal) are the rounds'
   * critical path. The same pairs, so the same answers. Needs probeLevels (the one-probe kernel,
   * levels 0, walks one thread per block).
   */
  walkLanes?: number | 'auto';
  /**
   * With walkLanes (session 6, not the default until measured): each walk unit stages its kept
   * columns as a bitmap over [0, n) with per-word counts (vs_count_search_batched_lanes_bits), so a
   * range's columns cost two shared loads instead of two gallops over the list, and rounds with many
   * columns (the column bisection's, kv + ks past the 8192-entry stage) no longer gallop through
   * global memory. Falls back to the staged list where bitmap and offsets do not fit (n past about
   * 127K, or many offsets). The same pairs.
   */
  walkColumnBitmap?: boolean;
  /**
   * The guided tree (session 7, not the default until measured; Vertical-Slash's counts() only,
   * FlexPrefill's alpha() searches as without it): each round lays out its 2^levels - 1 probes
   * best-first on the path the real outcomes most likely take, predicted from a model of the layer
   * pairs (cumulative gains over the rank order: vs_guide_gains + vs_guide_scan, two launches after
   * the ranking) calibrated on the exact pairs already answered, instead of every probe of the next
   * `levels` levels. The real outcomes are followed as before, so the same probes, pairs and counts,
   * in fewer rounds (host model at 16K, H = 4, s = 0.9: 3-4 rounds instead of 8). Needs probeLevels;
   * with walkLanes only with walkColumnBitmap.
   */
  guidedProbes?: boolean;
  /**
   * With guidedProbes and the one-lane bitmap walk (session 8, not the default until measured):
   * each round four warps find the two lines' threshold counts (a 32-way search of the cumulative
   * gains: where a prediction turns from sure-below to unsure and from unsure to sure-above, on the
   * common line and on the current column line), and the layout compares each probe's count with
   * them instead of loading its model pairs: no dependent loads in the layout's chain
   * (vs_count_search_batched_lanes_bits_guided_thresholds). The same predictions on the column
   * line, nearly all on the common line; the same probes, pairs and counts whatever they are.
   * Measured (H100, one call, both orders): the searches alone 0-4 % faster, the same rounds, but the
   * organism's 16K estimation not faster (+2.5 % / +4 %), so opt-in by the rule set before measuring.
   */
  guideThresholds?: boolean;
  /**
   * With walkColumnBitmap (session 7, not the default until measured): where the one-level bitmap
   * does not fit a walk unit's stage (n past 131,040, i.e. 128K prompts), stage its two-level form
   * (set bits counted per four words: vertical-slash-search.cu vs_columns_below_coarse; up to
   * n ≈ 209K) instead of running the plain batched kernel with its gallops. The same pairs.
   */
  coarseColumnBitmap?: boolean;
  /**
   * With walkColumnBitmap (session 7, not the default until measured): each walk unit reads its
   * column bitmap off the column row's ranks (one thread per word, one round of loads) instead of
   * building it from the compacted kept-column list (kv / 512 dependent rounds: 16 at the column
   * bisection's kv = 8192), and the rounds skip compacting every column row whose walk stages a
   * bitmap (half the selections). Where no bitmap fits, the list as before. The same pairs.
   */
  bitmapFromRanks?: boolean;
  /**
   * Not the search's own: the method's index builder walks its ranges over staged lists
   * (IndexBuilderOptions.stagedRanges, session 7, not the default until measured). Here so that one
   * options object (DEFAULT_COUNT_SEARCH, the benches' variants) sets the whole estimation.
   */
  stagedIndexRanges?: boolean;
  /**
   * Not the search's own either: the method builds its index without the host wait in the middle
   * (VerticalSlashIndexBuilder.buildDeferred, session 8, not the default until measured): the column
   * list sized by its bound, the pairs read after the attention is enqueued. Below 96K tokens (from
   * there the automatic kernel choice reads the pairs) and where the bound fits.
   */
  deferredIndexWait?: boolean;
  /**
   * A diagnostic (session 8), for benches: the default batched kernels (the one-lane column-bitmap
   * walk, guided or not; n up to 131,040) built with VS_SEARCH_TIMING, recording each round's phases
   * in SM clock cycles (lastRoundTiming). The same probes and answers; the stamps add a few cycles a
   * phase. Needs probeLevels, walkLanes and walkColumnBitmap, and takes neither guideThresholds nor
   * bitmapFromRanks.
   */
  timeRounds?: boolean;
  /**
   * With deviceHandOff and the guided column-bitmap search (session 8, not the default until
   * measured; Vertical-Slash's counts() only): the search kernel also writes the answer's counts and
   * names a selection slot whose rows still hold the answer's kept columns / offsets
   * (vs_count_search_batched_lanes_bits_guided_handoff), and the index builder reads both in place
   * (selectionOf; RankedRows.selection): no count memsets, no selection launch. Where no slot holds
   * the answer (its probe's slot was reused), the builder selects as before. The same index.
   */
  selectionHandOff?: boolean;
  /**
   * With guidedProbes and the column-bitmap walk (session 8; Vertical-Slash's default since session 9,
   * VERTICAL_SLASH_COUNT_SEARCH, not FlexPrefill's): the lean guided rounds
   * (vs_count_search_batched_lanes_bits_guided_lean): guideThresholds' predictions, the
   * layout advancing each node's state in registers from the last laid-out node's and storing it once,
   * and the follow moving the search's state in registers. Session 8's round timing put a guided
   * round's serial thread-0 work at ≈ 19 µs (layout 14.7, follow 4.6) against ≈ 5 unguided. The same
   * trees (host harness: every round of 2 x 576 searches), so the same probes, rounds and answers.
   */
  leanLayout?: boolean;
  /**
   * With leanLayout (session 8; Vertical-Slash's default since session 9, VERTICAL_SLASH_COUNT_SEARCH): a
   * probe keeping k <= n / 4 items of a row selects them from the row's rank order (vs_rank_order after
   * the ranking, one launch) through a
   * bitmap in shared memory, instead of a pass over all n ranks (a round's selections: 11.6 µs of the
   * organism's 16K round, 30 at Llama-8B's). The same selections, so the same probes and answers.
   */
  orderedSelect?: boolean;
  /**
   * With leanLayout (session 10, not the default until measured; Vertical-Slash's guided search only): the
   * lean layout's trees from a cheaper per-node chain (vertical-slash-search.cu "The compact layout"): a
   * node of six ints advanced by an int-only Vertical-Slash state machine and stored with three shared
   * stores instead of a 112-byte SearchState through a pointer, the goal's counts and the round's
   * thresholds in registers, and the fallback predictions (the floor, column searches not begun) from a
   * per-round cache of the column line's anchor. The same trees (host harness: every Vertical-Slash
   * round of 2 x 576 searches), so the same probes, rounds and answers. Its entries are an entry group
   * of their own (vertical-slash-search-groups.ts: compact). Needs leanLayout; with selectionHandOff also
   * orderedSelect.
   */
  compactLayout?: boolean;
}

/**
 * The answer's selection as the search left it (selectionHandOff): [2H] int32 counts on the device
 * (columns, then diagonals, clamped to n) and the kept columns / offsets of head h at columns /
 * offsets + h·stride (ascending), valid until the next search or release.
 */
export interface SearchSelection {
  counts: DevicePtr;
  columns: DevicePtr;
  offsets: DevicePtr;
  stride: number;
}

/** The fields of a timed round (vertical-slash-search.cu TimingField, in its order). */
export const ROUND_TIMING_FIELDS = [
  'step1', 'layout', 'layoutScan', 'layoutAdvance', 'layoutPredict', 'counts', 'selectMax', 'barrier1', 'walkMax', 'barrier2',
  'follow', 'tail', 'round', 'nodes', 'walks',
] as const;
export type RoundTimingField = (typeof ROUND_TIMING_FIELDS)[number];

/**
 * One timed search (timeRounds): each round's phases in SM clock cycles (nodes and walks are counts),
 * and block 0's clock and global timer over the whole launch, which give the cycles per microsecond.
 * Rounds past TIMING_ROUNDS are not recorded.
 */
export interface RoundTiming {
  rounds: number;
  launchNs: number;
  launchCycles: number;
  perRound: Record<RoundTimingField, number>[];
}

/** vertical-slash-search.cu's TIMING_HEADER, TIMING_FIELDS, TIMING_ROUNDS. */
const TIMING_HEADER = 8;
const TIMING_FIELDS = 16;
const TIMING_ROUNDS = 32;
const TIMING_BYTES = 8 * (TIMING_HEADER + TIMING_ROUNDS * TIMING_FIELDS);

/** Scores per row the guided tree's gains take (vs_guide_gains keeps (n - o) x 64 in 32 bits). */
export const GUIDED_MAX_N = 2 ** 26 - 1;

/** vs_guide_gains' block and items per block, vs_guide_scan's block (vertical-slash-search.cu GUIDE_*). */
const GUIDE_THREADS = 256;
const GUIDE_TILE = 1024;
const GUIDE_SCAN_THREADS = 1024;

/** The most threads the lanes kernel shares one block's walk between. */
export const MAX_WALK_LANES = 32;

/** Shared ints a walk unit stages (vertical-slash-search.cu's STAGE_INTS). */
const STAGE_INTS = 8192;

/**
 * Whether the column bitmap over [0, n) (with per-word counts) fits a unit's stage at all, offsets
 * aside. Where it cannot, walkColumnBitmap runs the plain batched kernel rather than lanes alone:
 * measured on the H100 (session 6), lanes without the bitmap were slower than one thread per block
 * (organism 16K 0.855 against 0.808 ms, Llama-8B 16K 1.949 against 1.758), and bench sparse's 128K,
 * where the bitmap never fits, lost 6.5% of Vertical-Slash estimation to them.
 */
export function columnBitmapFits(n: number): boolean {
  return 2 * Math.ceil(n / 32) + 1 <= STAGE_INTS;
}

/** Whether the two-level column bitmap (counts per four words: coarseColumnBitmap) fits, offsets aside. */
export function coarseColumnBitmapFits(n: number): boolean {
  const words = Math.ceil(n / 32);
  return words + Math.ceil(words / 4) + 1 <= STAGE_INTS;
}

/**
 * walkLanes 'auto': the most lanes (a power of two up to MAX_WALK_LANES) whose walk units, `probes` x
 * H x ceil(numBlocks / (512 / lanes)), fit `residentBlocks` at once (one unit per block: more units
 * than blocks queue on the same blocks), at least 1.
 */
export function autoWalkLanes(probes: number, numHeads: number, numBlocks: number, residentBlocks: number): number {
  let lanes = 1;
  while (lanes < MAX_WALK_LANES && probes * numHeads * Math.ceil(numBlocks / (THREADS / (2 * lanes))) <= residentBlocks) lanes *= 2;
  return lanes;
}

/** Whether the forced floor alone already meets ('meets') or exceeds ('exceeds') the budget. */
export type FloorStatus = 'below' | 'meets' | 'exceeds';

export interface SearchOutcome {
  floor: FloorStatus;
  /** Exact layer pairs of the floor probe (forced counts, or alpha 0). */
  floorPairs: number;
  /** Probes the search ran (a probe with the previous probe's counts reuses its pair total). */
  probes: number;
  /** Rounds of grid-wide work: one per probe, or per batch of probes with probeLevels. */
  rounds: number;
}

/** What both search kernels take after the ranking. */
interface SearchLaunch {
  ranks: DevicePtr;
  curves: DevicePtr;
  n: number;
  numBlocks: number;
  mode: 0 | 1;
  targetHi: number;
  targetLo: number;
  minBudget: number;
  /** vs_guide_scan's [3, n + 1] cumulative gains: the guided tree's kernels run (else null). */
  guide: DevicePtr | null;
}

export interface CountSearchOutcome extends SearchOutcome {
  verticalSize: number;
  slashSize: number;
}

export interface AlphaSearchOutcome extends SearchOutcome {
  alpha: number;
}

/** The guided kernels that have a selection hand-off twin (selectionHandOff), and the twin. */
const HAND_OFF_TWINS: ReadonlyMap<VsSearchEntry, VsSearchEntry> = new Map<VsSearchEntry, VsSearchEntry>([
  ['vs_count_search_batched_lanes_bits_guided', 'vs_count_search_batched_lanes_bits_guided_handoff'],
  ['vs_count_search_batched_lanes_bits_guided_lean', 'vs_count_search_batched_lanes_bits_guided_lean_handoff'],
  ['vs_count_search_batched_lanes_bits_guided_lean_order', 'vs_count_search_batched_lanes_bits_guided_lean_order_handoff'],
  ['vs_count_search_batched_lanes_bits_guided_compact_order', 'vs_count_search_batched_lanes_bits_guided_compact_order_handoff'],
]);

export class VerticalSlashCountSearch {
  /** The entries loaded so far (each from its entry group's module: vertical-slash-search-groups.ts). */
  private readonly loaded = new Map<VsSearchEntry, CudaKernel>();
  /** The last Vertical-Slash search's selection (selectionHandOff), with the scores it was of. */
  private handedOff: { scores: VerticalSlashScores; selection: SearchSelection } | null = null;
  /** Whether the last launch was the hand-off kernel (its result[6], [7] name slots). */
  private launchedHandOff = false;
  private readonly buf: Record<'keysA' | 'keysB' | 'valsA' | 'valsB' | 'selV' | 'selS' | 'runs' | 'state' | 'guide' | 'timing' | 'order', GrowableDeviceBuffer>;
  /** Decision-tree levels per round ('auto': per search), or null for one probe at a time. */
  readonly probeLevels: number | 'auto' | null;
  readonly deviceHandOff: boolean;
  readonly chunkedRanking: boolean;
  /** Threads per block walk in the batched search ('auto': per search), or null: the one-thread walk. */
  readonly walkLanes: number | 'auto' | null;
  readonly walkColumnBitmap: boolean;
  readonly guidedProbes: boolean;
  readonly guideThresholds: boolean;
  readonly coarseColumnBitmap: boolean;
  readonly bitmapFromRanks: boolean;
  readonly timeRounds: boolean;
  readonly selectionHandOff: boolean;
  readonly leanLayout: boolean;
  readonly orderedSelect: boolean;
  readonly compactLayout: boolean;
  /** The scores the ranks in keysB belong to (until the next ranking or release). */
  private ranked: VerticalSlashScores | null = null;

  constructor(private readonly rt: CudaRuntime, readonly numHeads: number, options: CountSearchOptions = {}) {
    if (!(numHeads > 0)) throw new Error(`vertical-slash count search: numHeads must be positive (got ${numHeads})`);
    const L = options.probeLevels;
    if (L !== undefined && L !== 'auto') {
      if (!Number.isInteger(L) || L < 1 || L > MAX_PROBE_LEVELS) throw new Error(`vertical-slash count search: probeLevels must be an integer in [1, ${MAX_PROBE_LEVELS}] (got ${L})`);
      if (L > maxProbeLevels(numHeads)) {
        throw new Error(`vertical-slash count search: ${2 ** L - 1} probes x ${2 * numHeads} score rows exceed the batched kernel's ${MAX_BATCH_COUNTS} counts; use fewer probeLevels`);
      }
    }
    this.probeLevels = L ?? null;
    this.deviceHandOff = options.deviceHandOff ?? false;
    this.chunkedRanking = options.chunkedRanking ?? false;
    const lanes = options.walkLanes;
    if (lanes !== undefined) {
      if (lanes !== 'auto' && !(Number.isInteger(lanes) && lanes >= 1 && lanes <= MAX_WALK_LANES && (lanes & (lanes - 1)) === 0)) {
        throw new Error(`vertical-slash count search: walkLanes must be a power of two in [1, ${MAX_WALK_LANES}] or 'auto' (got ${lanes})`);
      }
      if (L === undefined) throw new Error('vertical-slash count search: walkLanes needs probeLevels (the batched search); the one-probe search walks one thread per block');
    }
    this.walkLanes = lanes ?? null;
    this.walkColumnBitmap = options.walkColumnBitmap ?? false;
    if (this.walkColumnBitmap && lanes === undefined) throw new Error('vertical-slash count search: walkColumnBitmap needs walkLanes');
    this.guidedProbes = options.guidedProbes ?? false;
    if (this.guidedProbes) {
      if (L === undefined) throw new Error('vertical-slash count search: guidedProbes needs probeLevels (the batched search)');
      if (lanes !== undefined && !this.walkColumnBitmap) throw new Error('vertical-slash count search: guidedProbes with walkLanes needs walkColumnBitmap');
    }
    this.guideThresholds = options.guideThresholds ?? false;
    if (this.guideThresholds && !(this.guidedProbes && this.walkColumnBitmap)) {
      throw new Error('vertical-slash count search: guideThresholds needs guidedProbes with the column-bitmap walk (walkLanes + walkColumnBitmap)');
    }
    this.coarseColumnBitmap = options.coarseColumnBitmap ?? false;
    if (this.coarseColumnBitmap && !this.walkColumnBitmap) throw new Error('vertical-slash count search: coarseColumnBitmap needs walkColumnBitmap');
    this.bitmapFromRanks = options.bitmapFromRanks ?? false;
    if (this.bitmapFromRanks && !this.walkColumnBitmap) throw new Error('vertical-slash count search: bitmapFromRanks needs walkColumnBitmap');
    if (this.bitmapFromRanks && this.guideThresholds) throw new Error('vertical-slash count search: guideThresholds and bitmapFromRanks have no kernel together');
    this.timeRounds = options.timeRounds ?? false;
    if (this.timeRounds && !(L !== undefined && lanes !== undefined && this.walkColumnBitmap && !this.guideThresholds && !this.bitmapFromRanks)) {
      throw new Error('vertical-slash count search: timeRounds times the default batched kernels: it needs probeLevels, walkLanes and walkColumnBitmap, without guideThresholds or bitmapFromRanks');
    }
    this.selectionHandOff = options.selectionHandOff ?? false;
    if (this.selectionHandOff && !(this.deviceHandOff && this.guidedProbes && this.walkColumnBitmap && !this.guideThresholds && !this.bitmapFromRanks && !this.timeRounds)) {
      throw new Error('vertical-slash count search: selectionHandOff needs deviceHandOff and the guided column-bitmap search (guidedProbes, walkLanes, walkColumnBitmap), without guideThresholds, bitmapFromRanks or timeRounds');
    }
    this.leanLayout = options.leanLayout ?? false;
    if (this.leanLayout && !(this.guidedProbes && this.walkColumnBitmap && !this.bitmapFromRanks)) {
      throw new Error('vertical-slash count search: leanLayout needs the guided column-bitmap search (guidedProbes, walkLanes, walkColumnBitmap), without bitmapFromRanks');
    }
    this.orderedSelect = options.orderedSelect ?? false;
    if (this.orderedSelect && !this.leanLayout) throw new Error('vertical-slash count search: orderedSelect needs leanLayout');
    if (this.orderedSelect && this.timeRounds) throw new Error('vertical-slash count search: orderedSelect has no timed kernel (timeRounds)');
    this.compactLayout = options.compactLayout ?? false;
    if (this.compactLayout && !this.leanLayout) throw new Error('vertical-slash count search: compactLayout needs leanLayout');
    if (this.compactLayout && this.selectionHandOff && !this.orderedSelect) {
      throw new Error('vertical-slash count search: compactLayout with selectionHandOff needs orderedSelect (no other compact hand-off kernel)');
    }
    const names = ['keysA', 'keysB', 'valsA', 'valsB', 'selV', 'selS', 'runs', 'state', 'guide', 'timing', 'order'] as const;
    this.buf = Object.fromEntries(names.map((k) => [k, new GrowableDeviceBuffer(rt, `vertical-slash search ${k}`)])) as VerticalSlashCountSearch['buf'];
  }

  /**
   * An entry, loaded on first use from its entry group's module (VS_SEARCH_ENTRY_GROUPS: -DVS_SEARCH_ENTRIES=<id>,
   * compiled by NVRTC once per group and cached on disk): a search compiles only the groups its options launch.
   */
  private kernel(name: VsSearchEntry): CudaKernel {
    let k = this.loaded.get(name);
    if (!k) {
      k = this.rt.module('vertical-slash-search.cu', vsSearchGroupDefines(vsSearchEntryGroupOf(name))).kernel(name, [...VS_SEARCH_ENTRY_PARAMS[name]]);
      this.loaded.set(name, k);
    }
    return k;
  }

  /**
   * Enqueues vs_rank_order: [2H, n] int32, order[r] = the item of rank r in each row (orderedSelect).
   * Waits for the stream first only when the buffer must grow.
   */
  private launchRankOrder(ranks: DevicePtr, n: number): DevicePtr {
    const H = this.numHeads;
    if (!this.buf.order.fits(2 * H * n * 4)) this.rt.synchronize();
    const order = this.buf.order.ensure(2 * H * n * 4);
    this.kernel('vs_rank_order').launch({ grid: [Math.ceil(n / 256), 2 * H, 1], block: [256, 1, 1], sharedBytes: 0, stream: this.rt.stream }, [ranks, order.ptr, n]);
    return order.ptr;
  }

  /** Where the hand-off kernel writes the answer's counts [2H]: the state buffer after the P slots' selected[]. */
  private answerCountsPtr(levels: number): DevicePtr {
    return this.buf.state.current.ptr + BigInt(BATCHED_SELECTED_AT + 4 * (2 ** levels - 1) * 2 * this.numHeads);
  }

  /**
   * The answer's selection the last Vertical-Slash search of exactly these scores handed off
   * (selectionHandOff), or null: another search since, none handed off, or no slot held it.
   */
  selectionOf(scores: VerticalSlashScores): SearchSelection | null {
    return this.handedOff !== null && this.handedOff.scores === scores ? this.handedOff.selection : null;
  }

  /** The last search's round timing (timeRounds; after counts() or alpha(), which synchronise), else null. */
  lastRoundTiming(): RoundTiming | null {
    if (!this.timeRounds || !this.buf.timing.fits(TIMING_BYTES)) return null;
    const raw = new BigUint64Array(TIMING_BYTES / 8);
    this.rt.cuda.download(raw, this.buf.timing.current.ptr);
    const rounds = Number(raw[4]);
    const perRound: Record<RoundTimingField, number>[] = [];
    for (let r = 0; r < Math.min(rounds, TIMING_ROUNDS); r++) {
      const at = TIMING_HEADER + r * TIMING_FIELDS;
      perRound.push(Object.fromEntries(ROUND_TIMING_FIELDS.map((f, i) => [f, Number(raw[at + i])])) as Record<RoundTimingField, number>);
    }
    return { rounds, launchNs: Number(raw[1] - raw[0]), launchCycles: Number(raw[3] - raw[2]), perRound };
  }

  /** Vertical-Slash: the column and diagonal counts (every head the same) for target sparsity s. Synchronises. */
  counts(scores: VerticalSlashScores, sparsity: number): CountSearchOutcome {
    const r = this.run(scores, sparsity, 0, 0n, 1);
    return { ...r.outcome, verticalSize: r.result[0], slashSize: r.result[1] };
  }

  /**
   * FlexPrefill: the alpha whose per-head sizes (from `curves`, [2H, n] float64: FlexPrefillCoverage)
   * land closest to target sparsity s; alpha 0 when the floor meets it. Synchronises.
   */
  alpha(scores: VerticalSlashScores, curves: DevicePtr, sparsity: number, minBudget: number): AlphaSearchOutcome {
    if (!Number.isInteger(minBudget) || minBudget < 1) throw new Error(`vertical-slash count search: minBudget must be a positive integer (got ${minBudget})`);
    const r = this.run(scores, sparsity, 1, curves, minBudget);
    return { ...r.outcome, alpha: r.result[0] };
  }

  private run(scores: VerticalSlashScores, sparsity: number, mode: 0 | 1, curves: DevicePtr, minBudget: number) {
    const H = this.numHeads, n = scores.n;
    if (!Number.isInteger(n) || n < 1) throw new Error(`vertical-slash count search: n must be a positive integer (got ${n})`);
    if (!(sparsity >= 0 && sparsity < 1)) throw new Error(`vertical-slash count search: sparsity must be in [0, 1) (got ${sparsity})`);
    if (H * n > 2 ** 31) throw new Error(`vertical-slash count search: ${H * n} scores exceed the kernel's 32-bit rows`);
    const levels = this.probeLevels === 'auto' ? autoProbeLevels(H, n) : this.probeLevels ?? 0;
    // The hand-off skips rank()'s wait unless its scratch grows: the search's own buffers must not either.
    if (this.deviceHandOff && this.searchBuffers(levels, n).some(([b, bytes]) => !b.fits(bytes))) this.rt.synchronize();
    const guided = this.guidedProbes && mode === 0 && levels > 0;
    if (guided && n > GUIDED_MAX_N) throw new Error(`vertical-slash count search: guidedProbes takes n up to ${GUIDED_MAX_N} (got ${n})`);
    if (guided && this.deviceHandOff && !this.buf.guide.fits(3 * (n + 1) * 8)) this.rt.synchronize();
    const ranks = this.rank(scores);
    const [targetHi, targetLo] = doubleHalves((1 - sparsity) * H * causalPairs(n));
    const search: SearchLaunch = {
      ranks, curves, n, numBlocks: Math.ceil(n / PATTERN_BLOCK), mode, targetHi, targetLo, minBudget, guide: guided ? this.launchGuide(ranks, n) : null,
    };
    this.launchedHandOff = false;
    const resultPtr = levels === 0 ? this.launchSequential(search) : this.launchBatched(search, levels);
    this.rt.synchronize();
    const result = new Float64Array(levels === 0 ? RESULT_WORDS : BATCHED_RESULT_WORDS);
    this.rt.cuda.download(result, resultPtr);
    const floor: FloorStatus = result[2] === 2 ? 'exceeds' : result[2] === 1 ? 'meets' : 'below';
    const rounds = levels === 0 ? result[3] : result[5];
    this.handedOff = null;
    if (levels > 0 && this.launchedHandOff && result[6] >= 0 && result[7] >= 0) {
      const slotBytes = BigInt(H * n * 4);
      this.handedOff = {
        scores,
        selection: {
          counts: this.answerCountsPtr(levels), columns: this.buf.selV.current.ptr + BigInt(result[6]) * slotBytes,
          offsets: this.buf.selS.current.ptr + BigInt(result[7]) * slotBytes, stride: n,
        },
      };
    }
    return { result, outcome: { floor, floorPairs: result[4], probes: result[3], rounds } };
  }

  /**
   * Enqueues vs_rank_rows over the score rows: [2H, n] int32 ranks on the device (rank[i] of item i:
   * forced items first, then the scores descending, ties to the lower index), valid until the next
   * ranking or release. Waits for the stream first (earlier work may still read the scratch, and
   * growing frees it); with deviceHandOff only when a buffer must grow. One block per row
   * (vs_rank_rows), or with chunkedRanking two launches of ceil(n / 2048) blocks per row.
   */
  rank(scores: VerticalSlashScores): DevicePtr {
    const H = this.numHeads, n = scores.n;
    if (!Number.isInteger(n) || n < 1) throw new Error(`vertical-slash count search: n must be a positive integer (got ${n})`);
    const rows = 2 * H * n * 4;
    const scratch = [this.buf.keysA, this.buf.keysB, this.buf.valsA, this.buf.valsB];
    if (!this.deviceHandOff || scratch.some((b) => !b.fits(rows))) this.rt.synchronize();
    const [keysA, keysB, valsA, valsB] = scratch.map((b) => b.ensure(rows));
    const ranks = keysB.ptr; // written after the sort's last read of it
    const stream = this.rt.stream;
    if (this.chunkedRanking) {
      // Sorted chunks in keysA / valsA, then the ranks.
      const grid: [number, number, number] = [Math.ceil(n / RANK_CHUNK), 2 * H, 1];
      this.kernel('vs_rank_chunks').launch({ grid, block: [CHUNK_THREADS, 1, 1], sharedBytes: 0, stream }, [
        scores.vertical, scores.slash, keysA.ptr, valsA.ptr, n, H, FORCED_COLUMNS, FORCED_DIAGONALS,
      ]);
      this.kernel('vs_rank_merge').launch({ grid, block: [CHUNK_THREADS, 1, 1], sharedBytes: 0, stream }, [keysA.ptr, valsA.ptr, ranks, n]);
    } else {
      this.kernel('vs_rank_rows').launch({ grid: [2 * H, 1, 1], block: [RANK_THREADS, 1, 1], sharedBytes: 0, stream }, [
        scores.vertical, scores.slash, keysA.ptr, keysB.ptr, valsA.ptr, valsB.ptr, ranks, n, H, FORCED_COLUMNS, FORCED_DIAGONALS,
      ]);
    }
    this.ranked = scores;
    return ranks;
  }

  /**
   * The device ranks of exactly these scores (the object the estimator returned, so a later estimate
   * into the same buffers is another object), or null when the last ranking was of other scores.
   */
  ranksOf(scores: VerticalSlashScores): DevicePtr | null {
    return this.ranked === scores ? this.buf.keysB.current.ptr : null;
  }

  /** The search kernel's buffers and the bytes each needs at `levels` (0: one probe at a time). */
  private searchBuffers(levels: number, n: number): [GrowableDeviceBuffer, number][] {
    const H = this.numHeads;
    if (levels === 0) return [[this.buf.selV, H * n * 4], [this.buf.selS, H * n * 4], [this.buf.state, COUNTS_AT + 16 * H]];
    const probes = 2 ** levels - 1, slots = probes * H * n * 4;
    return [[this.buf.selV, slots], [this.buf.selS, slots], [this.buf.runs, slots], [this.buf.state, BATCHED_SELECTED_AT + 4 * (probes + 1) * 2 * H]];
  }

  /** Blocks for `units` work units of the search, never more than can be resident at once. */
  private gridFor(kernel: CudaKernel, units: number): number {
    return Math.min(this.residentBlocks(kernel), units);
  }

  private residentBlocks(kernel: CudaKernel): number {
    const resident = kernel.maxActiveBlocksPerSM(THREADS) * this.rt.cuda.info.multiprocessors;
    if (resident < 1) throw new Error('vertical-slash count search: the kernel does not fit a multiprocessor');
    return resident;
  }

  /** Enqueues vs_count_search; returns where its result will be. */
  private launchSequential(a: SearchLaunch): DevicePtr {
    const H = this.numHeads, n = a.n, stream = this.rt.stream;
    const search = this.kernel('vs_count_search');
    // Enough blocks for one selection per row and the walk.
    const grid = this.gridFor(search, Math.max(2 * H, H * Math.ceil(a.numBlocks / THREADS)));
    const selV = this.buf.selV.ensure(H * n * 4), selS = this.buf.selS.ensure(H * n * 4);
    const state = this.buf.state.ensure(COUNTS_AT + 16 * H);
    this.rt.cuda.fill32Async(state.ptr, 0, COUNTS_AT / 4, stream);
    const countsPtr = state.ptr + BigInt(COUNTS_AT), selectedPtr = countsPtr + BigInt(8 * H);
    this.rt.cuda.fill32Async(countsPtr, 0xffffffff, 4 * H, stream); // counts and selected: -1
    search.launch({ grid: [grid, 1, 1], block: [THREADS, 1, 1], sharedBytes: 0, stream, cooperative: true }, [
      a.ranks, a.curves, selV.ptr, selS.ptr, countsPtr, selectedPtr, state.ptr, state.ptr + BigInt(CHANGED_AT),
      state.ptr + BigInt(BARRIER_AT), state.ptr + BigInt(RESULT_AT), n, H, a.numBlocks, a.mode, a.targetHi, a.targetLo, a.minBudget,
      FORCED_COLUMNS, FORCED_DIAGONALS,
    ]);
    return state.ptr + BigInt(RESULT_AT);
  }

  /** Enqueues vs_count_search_batched with `levels` tree levels per round; returns where its result will be. */
  private launchBatched(a: SearchLaunch, levels: number): DevicePtr {
    const H = this.numHeads, n = a.n, stream = this.rt.stream;
    const probes = 2 ** levels - 1;
    const guided = a.guide !== null;
    // The guided and the ranked bitmap kernels stage the two-level bitmap themselves where the one-level one does not fit.
    const oneLevel = columnBitmapFits(n), coarse = !oneLevel && this.coarseColumnBitmap && coarseColumnBitmapFits(n);
    // compactLayout: the lean kernels' compact twins (the same arguments).
    const compact = this.compactLayout && guided;
    const leanName: VsSearchEntry = this.orderedSelect
      ? (compact ? 'vs_count_search_batched_lanes_bits_guided_compact_order' : 'vs_count_search_batched_lanes_bits_guided_lean_order')
      : (compact ? 'vs_count_search_batched_lanes_bits_guided_compact' : 'vs_count_search_batched_lanes_bits_guided_lean');
    const bitsName: VsSearchEntry = this.bitmapFromRanks
      ? (guided ? 'vs_count_search_batched_lanes_bits_guided_ranked' : 'vs_count_search_batched_lanes_bits_ranked')
      : (guided
        ? (this.leanLayout ? leanName
          : this.guideThresholds ? 'vs_count_search_batched_lanes_bits_guided_thresholds' : 'vs_count_search_batched_lanes_bits_guided')
        : coarse ? 'vs_count_search_batched_lanes_bits_coarse' : 'vs_count_search_batched_lanes_bits');
    if (this.timeRounds && !oneLevel) throw new Error(`vertical-slash count search: timeRounds times the one-level bitmap kernels, n up to 131,040 (got ${n})`);
    const timedName: VsSearchEntry | null = !this.timeRounds ? null
      : !guided ? 'vs_count_search_batched_lanes_bits_timed'
        : !this.leanLayout ? 'vs_count_search_batched_lanes_bits_guided_timed'
          : this.compactLayout ? 'vs_count_search_batched_lanes_bits_guided_compact_timed' : 'vs_count_search_batched_lanes_bits_guided_lean_timed';
    const lanesName: VsSearchEntry = timedName ?? (this.walkColumnBitmap ? bitsName : 'vs_count_search_batched_lanes');
    const plain = this.walkLanes === null || (this.walkColumnBitmap && !oneLevel && !coarse);
    const lanes = plain ? null : this.walkLanes === 'auto' ? autoWalkLanes(probes, H, a.numBlocks, this.residentBlocks(this.kernel(lanesName))) : this.walkLanes;
    const kernelName: VsSearchEntry = lanes === null ? (guided ? 'vs_count_search_batched_guided' : 'vs_count_search_batched') : lanesName;
    const kernel = this.kernel(kernelName);
    // Enough blocks for every probe's selections and walks of a round (a walk unit: 512 / lanes 64-row blocks).
    const grid = this.gridFor(kernel, probes * Math.max(2 * H, H * Math.ceil(a.numBlocks / (THREADS / (lanes ?? 1)))));
    const slots = probes * H * n * 4;
    const selV = this.buf.selV.ensure(slots), selS = this.buf.selS.ensure(slots), runs = this.buf.runs.ensure(slots);
    const state = this.buf.state.ensure(BATCHED_SELECTED_AT + 4 * (probes + 1) * 2 * H);
    this.rt.cuda.fill32Async(state.ptr, 0, BATCHED_SELECTED_AT / 4, stream);
    const selectedPtr = state.ptr + BigInt(BATCHED_SELECTED_AT);
    this.rt.cuda.fill32Async(selectedPtr, 0xffffffff, probes * 2 * H, stream); // no slot holds a selection yet
    const args = [
      a.ranks, a.curves, selV.ptr, selS.ptr, runs.ptr, selectedPtr, state.ptr, state.ptr + BigInt(BATCHED_BARRIER_AT),
      state.ptr + BigInt(BATCHED_RESULT_AT), n, H, a.numBlocks, a.mode, a.targetHi, a.targetLo, a.minBudget,
      FORCED_COLUMNS, FORCED_DIAGONALS, levels,
    ];
    const tail = [...(lanes === null ? [] : [lanes]), ...(a.guide === null ? [] : [a.guide])];
    // The hand-off runs where the default guided bitmap kernel would (one-level or two-level bitmap).
    const handOffName = HAND_OFF_TWINS.get(kernelName);
    const handOff = this.selectionHandOff && guided && handOffName !== undefined;
    const ordered = kernelName === leanName && this.orderedSelect;
    if (handOff) tail.push(this.answerCountsPtr(levels));
    if (ordered) tail.push(this.launchRankOrder(a.ranks, n));
    this.launchedHandOff = handOff;
    if (timedName) {
      const timing = this.buf.timing.ensure(TIMING_BYTES);
      this.rt.cuda.fill32Async(timing.ptr, 0, TIMING_BYTES / 4, stream);
      tail.push(timing.ptr);
    }
    (handOff && handOffName ? this.kernel(handOffName) : kernel).launch({ grid: [grid, 1, 1], block: [THREADS, 1, 1], sharedBytes: 0, stream, cooperative: true }, [...args, ...tail]);
    return state.ptr + BigInt(BATCHED_RESULT_AT);
  }

  /**
   * The guided tree's model of these scores alone (for tests and benches): ranks them, then enqueues
   * launchGuide; [3, n + 1] float64 on the device (col, diag, width), valid until the next search or
   * release. ranksOf(scores) gives the ranks it was built from.
   */
  guide(scores: VerticalSlashScores): DevicePtr {
    const n = scores.n;
    if (!Number.isInteger(n) || n < 1 || n > GUIDED_MAX_N) throw new Error(`vertical-slash count search: the guide takes n in [1, ${GUIDED_MAX_N}] (got ${n})`);
    if (!this.buf.guide.fits(3 * (n + 1) * 8)) this.rt.synchronize();
    return this.launchGuide(this.rank(scores), n);
  }

  /**
   * Enqueues the guided tree's model after the ranking: vs_guide_gains (each item's gain at its rank,
   * in the ranking's keysA / valsA scratch, free once the ranks are written) and vs_guide_scan (the
   * [3, n + 1] cumulative sums over the heads). Returns where they will be.
   */
  private launchGuide(ranks: DevicePtr, n: number): DevicePtr {
    const H = this.numHeads, stream = this.rt.stream;
    const guide = this.buf.guide.ensure(3 * (n + 1) * 8);
    const weighted = this.buf.keysA.current.ptr, width = this.buf.valsA.current.ptr;
    this.kernel('vs_guide_gains').launch({ grid: [Math.ceil(n / GUIDE_TILE), 2 * H, 1], block: [GUIDE_THREADS, 1, 1], sharedBytes: 0, stream }, [ranks, weighted, width, n, H]);
    this.kernel('vs_guide_scan').launch({ grid: [3, 1, 1], block: [GUIDE_SCAN_THREADS, 1, 1], sharedBytes: 0, stream }, [weighted, width, guide.ptr, n, H]);
    return guide.ptr;
  }

  release(): void {
    for (const b of Object.values(this.buf)) b.release();
    this.ranked = null;
    this.handedOff = null;
  }
}
