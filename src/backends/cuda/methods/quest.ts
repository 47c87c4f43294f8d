/**
 * Quest decoding on the device (the CPU QuestDecode, src/methods/quest.ts, is the reference): per
 * layer, page bounds kept up to date as rows are appended (the first step folds the whole prompt),
 * page scores of the step's query, the top pages per unit (KV group with share_pages, else query
 * head) written as segment lists, and the segment-list decode over them plus the current page.
 * Only the budget k crosses from the host (it depends on the position alone). The selection runs
 * through QuestKernels.selectStep: for caches of fewer than QUEST_MULTI_BLOCK_MIN_PAGES pages with its
 * default, three launches (v3; the one-launch v4 in graphs), for longer ones the multi-block step (v8
 * since session 6, eager and graph alike), which measured faster there and slower below (docs/perf.md,
 * "Session 5: multi-block Quest selection", "Session 6: Quest v8"; v10 on the 4-head entries for 4-head
 * units since session 7: questMultiBlockOptions). A QuestKernelOptions argument fixes one step for every cache
 * (tests, benches: v5-v10 and their unit-size entries, eager and in graphs).
 * stepParts() hands out decode()'s two launch groups apart, for bench/quest-step.ts (session 7: in the
 * step, v8's selection measured no faster than v7's, though 4 us faster alone).
 *
 * In the model's CUDA graph (graphSteps, issue 9) a step is the one-launch selection with the position
 * read on the device (selectStepAt) and the segment decode with a device tail: the budget and the
 * current page's first row come from per-position tables the host fills with the same rule
 * (questGraphTables), so the lists equal the eager step's and the CPU's. The first decode step of a
 * sequence stays eager: it folds the whole prompt into the bounds; graph steps start after it.
 */
import { type HeadCounts, emptyCounts } from '../../../engine/attention.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import { resolveOptions } from '../../../methods/options.js';
import { questMethod, questPagesFor } from '../../../methods/quest.js';
import type { CudaRuntime } from '../runtime.js';
import {
  DeviceQuestBounds, type QuestEntryGroupName, type QuestKernelOptions, QuestKernels, QuestStepScratch, questGridStepEntry,
} from '../kernels/quest.js';
import { SegmentDecodeKernel, SegmentLists, segmentWorkspaceBytes } from '../kernels/segment-decode.js';
import type {
  DeviceDecodeCall, DeviceDecodeFactory, DeviceDecodeMethod, DeviceGraphDecodeSetup, DeviceGraphDecodeSteps, DeviceMethodOptions,
  EstimationTiming,
} from './contract.js';
import { EstimationClock } from './estimation-clock.js';
import { segmentDecodeFactory } from './kernel-family-factories.js';
import { assertShape } from './shape-check.js';

export interface QuestSettings {
  pageSize: number;
  sparsity: number | null;
  tokenBudget: number | null;
  sharePages: boolean;
}

/** What a decode step at position p reads: pagesRead selected pages, then the current page's rows [tailStart, p]. */
export interface QuestStepPlan {
  /** p's page: the pages before it are the candidates. */
  current: number;
  /** questPagesFor(p): the pages kept (<= current). */
  pagesRead: number;
  tailStart: number;
  tailRows: number;
}

export function questStepPlan(p: number, settings: QuestSettings): QuestStepPlan {
  const P = settings.pageSize;
  const current = Math.floor(p / P);
  const pagesRead = Math.min(questPagesFor(p, P, settings.sparsity, settings.tokenBudget), current);
  return { current, pagesRead, tailStart: current * P, tailRows: p - current * P + 1 };
}

/** The pairs of a step at p: every query head reads the kept pages and the current page up to p. */
export function questStepCounts(p: number, settings: QuestSettings, numHeads: number): HeadCounts {
  const { pagesRead, tailRows } = questStepPlan(p, settings);
  const counts = emptyCounts(numHeads);
  counts.attended.fill(pagesRead * settings.pageSize + tailRows);
  counts.dense.fill(p + 1);
  return counts;
}

/**
 * What a captured graph reads per position for steps at [first, capacity): budgets[p] (questPagesFor,
 * the budget the eager step passes), tailStarts[p] (p's page's first row), both [capacity] int32 with
 * zeros below `first`; maxListRows: the most listed rows of any of those steps (fixes the decode's grid).
 */
export interface QuestGraphTables {
  budgets: Int32Array;
  tailStarts: Int32Array;
  maxListRows: number;
}

export function questGraphTables(first: number, capacity: number, settings: QuestSettings): QuestGraphTables {
  if (!Number.isInteger(first) || !Number.isInteger(capacity) || first < 0 || capacity <= first) {
    throw new Error(`quest: graph tables need integers 0 <= first < capacity (got ${first}, ${capacity})`);
  }
  const budgets = new Int32Array(capacity), tailStarts = new Int32Array(capacity);
  let maxListRows = 0;
  for (let p = first; p < capacity; p++) {
    const plan = questStepPlan(p, settings);
    budgets[p] = questPagesFor(p, settings.pageSize, settings.sparsity, settings.tokenBudget);
    tailStarts[p] = plan.tailStart;
    maxListRows = Math.max(maxListRows, plan.pagesRead * settings.pageSize);
  }
  return { budgets, tailStarts, maxListRows };
}

/**
 * Caches of at least this many pages select with the multi-block step (v5). Measured on the H100
 * (Llama-8B heads, page 16, graph replays, session 5): v5 against the step used below it, 0.80x at 1,024
 * pages (16K), 0.93x at 2,048 (32K), 1.15x at 4,096 (64K; eager 1.00-1.02x against v3) and 1.34x at 8,192
 * (128K; eager 1.16-1.25x).
 */
export const QUEST_MULTI_BLOCK_MIN_PAGES = 4096;

/**
 * One decode step of QuestDeviceDecode as its two launch groups (stepParts): select() queues the page
 * selection, attend() the segment decode over the lists it wrote (and the current page's rows).
 */
export interface QuestStepParts {
  select(): void;
  attend(): void;
  /** The pairs the step attends (decode()'s return value). */
  counts: HeadCounts;
}

/** One layer's per-sequence state. */
interface QuestLayerState {
  /** The selection kernels this sequence's cache length picked (QUEST_MULTI_BLOCK_MIN_PAGES). */
  kernels: QuestKernels;
  bounds: DeviceQuestBounds;
  /** Page scores of the current step and the selection's arrival counters. */
  scratch: QuestStepScratch;
  segments: SegmentLists;
}

/**
 * The unit sizes (query heads per unit) whose default multi-block step is v10 on its unit-size entries, each
 * admitted by a rule written before its numbers (docs/perf.md, "Session 7: the Quest step" for 4, "Session 8:
 * unit-size entries" for 8 and 1, session 9 for 2: with batched page sums, 32:16 heads, 4.2-4.9 us below both
 * default (v8) rows at 128K and 3.3-3.7 at 64K, eager and graph, and 1.3 us below with every guess stale; and for 7:
 * v7's scorer with 7 heads a constant (constantPlainHeads) and batched page sums, 28:4 heads, 6.2-6.8 us below both
 * default rows at 128K and 4.0-4.5 at 64K, 3.0 us below with every guess stale).
 */
const QUEST_V10_UNIT_SIZES: ReadonlySet<number> = new Set([1, 2, 4, 7, 8]);
/**
 * Of those, the unit sizes scored by v7's scorer on an entry with the head count a constant (constantPlainHeads): its
 * query loads leave the page loop (SASS, session 9: 80 LDG against the any-size entry's 108).
 */
const QUEST_CONSTANT_PLAIN_UNIT_SIZES: ReadonlySet<number> = new Set([7]);
/**
 * Of those, the unit sizes whose v10 entries sum each batch's page scores as one reduce-scatter (batchedPageSums;
 * session 8, round 3: v10h4b / v10h1b 2.2-2.5 / 5.1-6.3 us below v10h eager and in graphs at 128K, 0.9-3.3 at 64K;
 * session 9, round 1: v10h8b 2.2-2.6 us below both v10h rows at 128K and 0.9-1.2 at 64K, 64:8 heads; v10h2b, 32:16
 * heads, 3.1-3.6 / 1.4-2.1 us below both v10h rows at 128K / 64K; v10h7b, 28:4 heads, 0.8-1.1 us below v10h7 at 128K).
 */
const QUEST_BATCHED_SUM_UNIT_SIZES: ReadonlySet<number> = new Set([1, 2, 4, 7, 8]);

/**
 * The selection the method runs from QUEST_MULTI_BLOCK_MIN_PAGES pages. v8, the multi-block step with
 * rolled score loads and light per-page scoring (session 6, H100, graph steps at s = 0.9: 128K 34.4 ->
 * 29.3 us against v5, 64K 24.0 -> 20.8; docs/perf.md, "Session 6: Quest v8"). Where a shared-page unit
 * has 4 query heads (Llama-8B's GQA): v10 on entries compiled for 4-head units (session 7: the method's
 * eager and graph steps 2.5-6.5 us below v8's at 64K-128K, s = 0.9-0.95, in both variant orders, and
 * 3.1 us below with every guess stale; docs/perf.md, "Session 7: the Quest step"), and of 8 (Llama-70B's:
 * session 8, 64:8 heads, v10 on the 8-head entry 5.8-10.6 us below v8 eager and in graphs at 64K-128K, s = 0.9-0.95,
 * bracketed by two default runs, and 6.4 us below with every guess stale), and of 1 (MHA, and pages per query
 * head: 32:32 heads, 2.1-3.8 us eager and 2.2-4.9 us in graphs below both bracketing default runs, stale guesses
 * +0.5 / +0.9 us at 128K / 64K against the lower default), and of 2 (session 9, with batched page sums; session 8's
 * v10 without them gained under 1 us in graphs), and of 7 (Qwen2.5-7B's, session 9: on the constant-7-head entry;
 * session 8's any-size entry lost 1.4 us to stale guesses). Other unit sizes (3, 5, 6) keep v8. Units of 1, 2, 4, 7
 * and 8 heads also batch their page sums (QUEST_BATCHED_SUM_UNIT_SIZES). Every choice gives v3's lists word for word.
 */
export function questMultiBlockOptions(shape: { numHeads: number; numKvHeads: number }, sharePages: boolean): QuestKernelOptions {
  const v8: QuestKernelOptions = { multiBlockStep: true, rolledScores: true, lightScores: true };
  const unitHeads = sharePages ? shape.numHeads / shape.numKvHeads : 1;
  if (!QUEST_V10_UNIT_SIZES.has(unitHeads)) return v8;
  const v10UnitSize: QuestKernelOptions = {
    ...v8, guessedPass: true, epochBarriers: true, specializedHeads: true,
    ...(QUEST_CONSTANT_PLAIN_UNIT_SIZES.has(unitHeads) ? { constantPlainHeads: true } : {}),
  };
  return QUEST_BATCHED_SUM_UNIT_SIZES.has(unitHeads) ? { ...v10UnitSize, batchedPageSums: true } : v10UnitSize;
}

/**
 * The quest.cu entry groups the method's defaults can load, over every unit size a model may have (1-8 heads: base
 * and each size's default step pair); one model loads base and its own size's pair (bench/cold-compile.ts times them).
 */
export function questDefaultEntryGroups(): QuestEntryGroupName[] {
  const groups = new Set<QuestEntryGroupName>(['base']);
  for (let heads = 1; heads <= 8; heads++) {
    groups.add(questGridStepEntry(questMultiBlockOptions({ numHeads: heads, numKvHeads: 1 }, true), heads));
  }
  return [...groups];
}

export class QuestDeviceDecode implements DeviceDecodeMethod, EstimationTiming {
  readonly id = 'quest';
  readonly observationWindow = 0;
  /** [below QUEST_MULTI_BLOCK_MIN_PAGES, at or above it]: one instance twice when kernelOptions fix the step. */
  private readonly kernelsByLength: readonly [QuestKernels, QuestKernels];
  private readonly decoder: SegmentDecodeKernel;
  private readonly layers = new Map<number, QuestLayerState>();
  private readonly clock: EstimationClock;

  constructor(
    private readonly rt: CudaRuntime, private readonly config: ModelConfig, readonly settings: QuestSettings, kernelOptions?: QuestKernelOptions,
  ) {
    const shape = { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim };
    const kernels = (options: QuestKernelOptions) => new QuestKernels(rt, shape, settings.pageSize, settings.sharePages, options);
    if (kernelOptions) {
      const fixed = kernels(kernelOptions);
      this.kernelsByLength = [fixed, fixed];
    } else {
      this.kernelsByLength = [kernels({}), kernels(questMultiBlockOptions(shape, settings.sharePages))];
    }
    this.decoder = new SegmentDecodeKernel(rt, shape, !settings.sharePages);
    this.clock = new EstimationClock(rt);
  }

  private stateOf(call: DeviceDecodeCall): QuestLayerState {
    let state = this.layers.get(call.layer);
    if (!state) {
      const kernels = this.kernelsFor(call.cache.capacity);
      const bounds = new DeviceQuestBounds(this.rt, kernels.shape, this.settings.pageSize, call.cache.capacity);
      state = {
        kernels,
        bounds,
        scratch: new QuestStepScratch(this.rt, kernels.units, bounds.pageCapacity, kernels.scratchOptions),
        segments: new SegmentLists(this.rt, kernels.units, bounds.pageCapacity),
      };
      this.layers.set(call.layer, state);
    }
    return state;
  }

  /** The selection kernels for a cache of `capacity` rows. */
  kernelsFor(capacity: number): QuestKernels {
    return this.kernelsByLength[Math.ceil(capacity / this.settings.pageSize) >= QUEST_MULTI_BLOCK_MIN_PAGES ? 1 : 0];
  }

  decode(call: DeviceDecodeCall): HeadCounts {
    const parts = this.stepParts(call);
    this.clock.start();
    parts.select();
    this.clock.end();
    parts.attend();
    return parts.counts;
  }

  /**
   * decode()'s step as its two launch groups, checked and bound to `call` but not yet queued: the
   * selection (selectStep: bounds refresh, scores, top-k lists) and the attention over the lists (the
   * segment decode's partial and combine launches). decode() runs them in that order with the
   * estimation clock around the selection; bench/quest-step.ts times them apart. A first call on a
   * layer creates its state and compiles the kernels here, outside whatever is timed.
   */
  stepParts(call: DeviceDecodeCall): QuestStepParts {
    const { position: p, cache } = call;
    assertShape(this.id, call.shape, this.config);
    if (cache.length !== p + 1) throw new Error(`${this.id}: expects a full cache holding positions 0..${p} (it holds ${cache.length} rows)`);
    const state = this.stateOf(call);
    if (state.bounds.coveredRows > p + 1) throw new Error(`${this.id}: layer ${call.layer} saw a later position before ${p}: reset() between sequences`);
    const P = this.settings.pageSize;
    const { current, pagesRead, tailStart, tailRows } = questStepPlan(p, this.settings);
    const k = questPagesFor(p, P, this.settings.sparsity, this.settings.tokenBudget);
    state.kernels.prepare();
    return {
      select: () => state.kernels.selectStep({
        q: call.q, bounds: state.bounds, cache, rows: p + 1, pages: current, k, scratch: state.scratch, segments: state.segments,
      }),
      attend: () => {
        this.decoder.run({
          q: call.q, k: cache.keys.ptr, v: cache.values.ptr, kvStride: cache.capacity, out: call.out, segments: state.segments,
          tailStart, tailRows, maxRows: pagesRead * P + tailRows, scale: call.shape.scale,
        });
      },
      counts: questStepCounts(p, this.settings, this.config.numHeads),
    };
  }

  /**
   * Graph steps once every layer's bounds cover the rows before setup.firstPosition (after the
   * sequence's first, eager, step; null before it, and where the last step's pages exceed what the
   * one-launch selection stages in shared memory). Each layer records selectStepAt over its own
   * bounds, scratch and lists, then the segment decode with the tail start from the table; the
   * budget and tail tables and the decode workspace live in the graph's memory.
   */
  graphSteps(setup: DeviceGraphDecodeSetup): DeviceGraphDecodeSteps | null {
    assertShape(this.id, setup.shape, this.config);
    const first = setup.firstPosition, capacity = setup.capacity;
    if (capacity <= first) throw new Error(`${this.id}: no position to replay (first ${first}, capacity ${capacity})`);
    if (this.layers.size === 0) return null;
    for (const state of this.layers.values()) if (state.bounds.coveredRows !== first) return null;
    const P = this.settings.pageSize;
    const maxPages = Math.floor((capacity - 1) / P);
    for (const state of this.layers.values()) if (!state.kernels.graphStepFits(maxPages)) return null;
    for (const [layer, state] of this.layers) {
      if (state.bounds.pageCapacity < maxPages + 1) throw new Error(`${this.id}: layer ${layer}'s bounds hold ${state.bounds.pageCapacity} pages, positions up to ${capacity - 1} need ${maxPages + 1}`);
    }
    const tables = questGraphTables(first, capacity, this.settings);
    // The kernel's chunk follows maxListRows + the step's tail rows (1..P), so its grid covers that range.
    const launch = this.decoder.planGraph(tables.maxListRows + 1, tables.maxListRows + P);
    // Layers run one after another in the stream: one workspace serves them all.
    const workspace = setup.own(segmentWorkspaceBytes(this.config.numHeads, this.config.headDim, launch.splits));
    const budgets = setup.own(tables.budgets.byteLength), tailStarts = setup.own(tables.tailStarts.byteLength);
    for (const state of this.layers.values()) state.kernels.prepare();
    // Synchronous copies outside the stream: fresh pool blocks may still be read by queued kernels.
    this.rt.synchronize();
    this.rt.cuda.upload(budgets, tables.budgets);
    this.rt.cuda.upload(tailStarts, tables.tailStarts);
    const stateOf = (layer: number): QuestLayerState => {
      const state = this.layers.get(layer);
      if (!state) throw new Error(`${this.id}: layer ${layer} has no page bounds (its first decode step did not run)`);
      return state;
    };
    return {
      record: (call) => {
        const state = stateOf(call.layer);
        if (call.cache.capacity < capacity) throw new Error(`${this.id}: cache of ${call.cache.capacity} rows for positions up to ${capacity - 1}`);
        state.kernels.selectStepAt({
          q: call.q, bounds: state.bounds, cache: call.cache, position: call.position, budgets, maxPages, scratch: state.scratch, segments: state.segments,
        });
        this.decoder.runGraph({
          q: call.q, k: call.cache.keys.ptr, v: call.cache.values.ptr, kvStride: call.cache.capacity, out: call.out, segments: state.segments,
          position: call.position, tailStart: 0, tailStarts, maxListRows: tables.maxListRows, launch, workspace, scale: setup.shape.scale,
        });
      },
      counts: (layer, position) => {
        // The replay folded row `position` into the bounds: an eager step after it folds only later rows.
        const bounds = stateOf(layer).bounds;
        bounds.coveredRows = Math.max(bounds.coveredRows, position + 1);
        return questStepCounts(position, this.settings, this.config.numHeads);
      },
    };
  }

  lastEstimationMs(): number | null {
    return this.clock.lastEstimationMs();
  }

  /** Drops every layer's bounds, scores and lists (stream order keeps queued kernels safe). */
  reset(): void {
    for (const s of this.layers.values()) {
      s.bounds.release();
      s.scratch.release();
      s.segments.release();
    }
    this.layers.clear();
  }
}

/** The CPU method's parameters and budget rule, defaults filled by its descriptor. */
export function questSettings(options: DeviceMethodOptions): QuestSettings {
  const resolved = resolveOptions(questMethod, options);
  const pageSize = resolved.params.pageSize as number;
  const tokenBudget = typeof resolved.params.tokenBudget === 'number' ? resolved.params.tokenBudget : null;
  if (tokenBudget !== null && tokenBudget % pageSize !== 0) {
    throw new Error(`quest: tokenBudget (${tokenBudget}) must be a multiple of pageSize (${pageSize})`);
  }
  return { pageSize, sparsity: resolved.sparsity, tokenBudget, sharePages: resolved.params.sharePages as boolean };
}

// The segment decode's group limit applies even without share_pages (where every query head is its
// own unit and any group size would run): the default shares one kernel block per group.
export const questDeviceFactory: DeviceDecodeFactory = segmentDecodeFactory('quest',
  (rt, config, options) => new QuestDeviceDecode(rt, config, questSettings(options)));
