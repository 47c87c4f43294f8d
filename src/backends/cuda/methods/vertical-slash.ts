/**
 * Vertical-Slash (MInference) prefill on the GPU, behind the device method contract: the CPU method's
 * parameters, defaults, selection and executed pattern (src/methods/vertical-slash.ts), run as
 *   1. the estimate: last A queries x all keys, softmax, column and diagonal sums
 *      (kernels/vertical-slash-estimate.cu);
 *   2. the counts: the given verticalSize / slashSize (default 512 each, clamped to n), or for a target
 *      sparsity the CPU's search (vertical-slash-counts.ts: it depends on the scores, through each
 *      probe's exact layer pairs) run whole on the device in one cooperative launch
 *      (kernels/vertical-slash-search.cu), the host reading back the two counts;
 *   3. the selection and its per-block index (kernels/vertical-slash-index.cu);
 *   4. the sparse attention (kernels/vertical-slash-prefill.cu, or on Hopper by default its wgmma twin
 *      vertical-slash-prefill-wgmma.cu: verticalSlashKernelChoice).
 * Steps 1-3 are the importance estimation, timed with a pair of events (EstimationTiming). The
 * returned counts are the exact attended pairs per query head, as the CPU method counts them.
 */
import type { HeadCounts } from '../../../engine/attention.js';
import { causalPairs, intParam, optionalIntParam, resolveOptions } from '../../../methods/options.js';
import { verticalSlashMethod } from '../../../methods/vertical-slash.js';
import type { DevicePtr, EventHandle } from '../context.js';
import type { PrefillShape } from '../kernels/flash-prefill.js';
import { VerticalSlashEstimator, type VerticalSlashScores } from '../kernels/vertical-slash-estimate.js';
import {
  type DeviceVerticalSlashIndex, type RankedRows, type VerticalSlashCounts, VerticalSlashIndexBuilder,
} from '../kernels/vertical-slash-index.js';
import { AUTO_MMA_MIN_CONTEXT, type VerticalSlashKernelChoice, VerticalSlashFlashPrefill } from '../kernels/vertical-slash-prefill.js';
import { type CountSearchOptions, VerticalSlashCountSearch } from '../kernels/vertical-slash-search.js';
import type { CudaRuntime } from '../runtime.js';
import { FLOOR_EXCEEDED_NOTE, type VerticalSlashCountChoice } from '../vertical-slash-counts.js';
import type {
  DeviceMethodOptions, DevicePrefillCall, DevicePrefillFactory, DevicePrefillMethod, EstimationTiming,
} from './contract.js';
import { verticalSlashFamilyFactory } from './kernel-family-factories.js';
import { assertPrefillShape } from './shape-check.js';


/**
 * The count search the methods run: the batched decision tree at 'auto' levels (session 5, H100, s = 0.9
 * at 16K: Vertical-Slash estimation 2.8x faster per organism layer, 1.8x at Llama-8B's shape, the same
 * counts as one probe at a time; docs/perf.md, "Session 5: estimation on small models"), its ranks handed
 * to the index builder and ranked by many blocks per row (session 6, H100, s = 0.9 at 16K: organism
 * estimation 1.048 -> 0.810 ms per layer for Vertical-Slash, 1.149 -> 0.963 for FlexPrefill, Llama-8B
 * 1.878 -> 1.657; the same counts and pairs; docs/perf.md, "Session 6: index hand-off and chunked ranking"),
 * and its walks counting kept columns from a bitmap, one thread per block walk (session 6, same shapes:
 * organism 0.808 -> 0.699 ms with lanes 'auto', 0.630 with one lane in a later call where 'auto' read 0.736;
 * Llama-8B 1.758 -> 1.543, then 1.422 against 1.589; the lanes' larger grid costs more than they save;
 * docs/perf.md, "Session 6: walk lanes and a column bitmap"); Vertical-Slash's rounds laid out best-first on
 * the predicted path (guidedProbes; session 7, H100, s = 0.9, same call: organism 16K 0.570 -> 0.461 ms,
 * Llama-8B 16K 1.349 -> 1.281, organism 128K 5.77 -> 3.28 with the two-level bitmap; 8 -> 3 rounds at
 * organism 16K; the same counts and pairs; docs/perf.md, "Session 7: a guided probe tree"), and past
 * n = 131,040, where the one-level bitmap does not fit, its two-level form instead of the plain kernel
 * (coarseColumnBitmap; session 7, same call, 128K: organism V-S 8.06 -> 5.77 ms, Llama-8B 19.8 -> 16.8,
 * FlexPrefill 4.62 -> 4.57 and 17.0 -> 15.8).
 */
export const DEFAULT_COUNT_SEARCH: CountSearchOptions = {
  probeLevels: 'auto', deviceHandOff: true, chunkedRanking: true, walkLanes: 1, walkColumnBitmap: true, guidedProbes: true,
  coarseColumnBitmap: true,
};

/**
 * Vertical-Slash's own count search (session 9): DEFAULT_COUNT_SEARCH with the lean guided rounds
 * (leanLayout) and small selections from the rank order (orderedSelect), switched by a rule written
 * before a bracketed measurement (bench/vertical-slash-bracketed.ts, H100, one process, serpentine
 * rounds, every cell's drift within 3 %; docs/perf.md, Vertical-Slash, session 9): estimation −6.0 / −6.3 %
 * at Llama-8B 16K (s = 0.9 / 0.95), −10.0 / −10.1 % at 64K, −6.5 / −7.6 % at 128K, the organism's 4K
 * −3.4 / −1.1 % and 16K −2.0 / −3.2 %; totals −0.9 to −4.0 %; the same counts, pairs and output rows in
 * every cell. FlexPrefill keeps DEFAULT_COUNT_SEARCH (its alpha search takes neither option's kernels).
 */
export const VERTICAL_SLASH_COUNT_SEARCH: CountSearchOptions = { ...DEFAULT_COUNT_SEARCH, leanLayout: true, orderedSelect: true };

export interface VerticalSlashDeviceParams {
  approximationSize: number;
  /** Target sparsity, or null when the counts are given. */
  sparsity: number | null;
  verticalSize: number | null;
  slashSize: number | null;
}

/** The CPU method's fixed counts when no sparsity is given (the original's 512 / 512). */
const DEFAULT_COUNT = 512;

/** What a family member decided for one layer: per-head counts and a summary for inspection. */
export interface DeviceCountChoice {
  counts: VerticalSlashCounts;
  summary: Record<string, number | string>;
  note?: string;
  /** [2H] int32 on the device equal to `counts` (the hand-off copies them instead of uploading). */
  deviceCounts?: DevicePtr;
}

/**
 * The prefill driver shared by the GPU Vertical-Slash family (as VerticalSlashFamilyPrefill on the
 * CPU): estimate, let the method choose per-head counts, build the index, run the sparse kernel. The
 * members differ only in how they choose the counts (and in A).
 */
export abstract class VerticalSlashFamilyDevicePrefill implements DevicePrefillMethod, EstimationTiming {
  abstract readonly id: string;
  readonly requiresWholePrompt = true;
  protected readonly estimator: VerticalSlashEstimator;
  protected readonly builder: VerticalSlashIndexBuilder;
  /** The count searches for a target sparsity (device-resident, one launch per layer). */
  protected readonly search: VerticalSlashCountSearch;
  private readonly attention: VerticalSlashFlashPrefill;
  private events: [EventHandle, EventHandle] | null = null;
  private timed = false;
  /** CountSearchOptions.deferredIndexWait: the index's pairs read after the attention is enqueued. */
  private readonly deferIndexWait: boolean;
  /** The counts the last call used, and the index it executed (until the next call), for inspection. */
  lastChoice: DeviceCountChoice | null = null;
  lastIndex: DeviceVerticalSlashIndex | null = null;

  /**
   * kernel: the attention kernel, an mma.sync row tiling (1 | 2, as before) or `{ wgmma }`; absent, the
   * launcher's choice (verticalSlashKernelChoice). searchOptions: the count search's kernel (absent:
   * DEFAULT_COUNT_SEARCH, the batched decision tree; `{}`: one probe at a time, the same results);
   * with `deviceHandOff`, a layer whose counts came from the search builds its index from the
   * search's ranks (VerticalSlashIndexBuilder.build's `ranked`: the same index, fewer launches and
   * host waits).
   */
  constructor(
    protected readonly rt: CudaRuntime, readonly shape: PrefillShape, readonly approximationSize: number, kernel?: VerticalSlashKernelChoice,
    searchOptions: CountSearchOptions = DEFAULT_COUNT_SEARCH,
  ) {
    this.estimator = new VerticalSlashEstimator(rt, shape);
    this.builder = new VerticalSlashIndexBuilder(rt, shape.numHeads, { stagedRanges: searchOptions.stagedIndexRanges ?? false });
    this.deferIndexWait = searchOptions.deferredIndexWait ?? false;
    this.search = new VerticalSlashCountSearch(rt, shape.numHeads, searchOptions);
    this.attention = new VerticalSlashFlashPrefill(rt, shape, kernel);
  }

  /** Per-head counts for this layer from the device scores (A = the clamped approximation size). */
  protected abstract chooseCounts(scores: VerticalSlashScores, n: number, A: number): DeviceCountChoice;

  prefill(call: DevicePrefillCall): HeadCounts {
    const H = this.shape.numHeads;
    const n = call.numQueries;
    assertPrefillShape(this.id, call.layer, call.shape, this.shape);
    if (call.queryStart !== 0 || !call.isLastChunk || call.cache.length !== n) {
      throw new Error(`${this.id} (layer ${call.layer}): needs the whole prompt in one call (queryStart ${call.queryStart}, ` +
        `${n} queries, cache ${call.cache.length} rows, last chunk ${call.isLastChunk})`);
    }
    // The original fails when the prompt is shorter than A; as the CPU methods, we clamp A to n.
    const A = Math.min(this.approximationSize, n);
    const [start, end] = this.events ??= [this.rt.cuda.createEvent(), this.rt.cuda.createEvent()];
    this.rt.cuda.record(start, this.rt.stream);
    const scores = this.estimator.run({
      q: call.q, qRowStride: call.qRowStride, k: call.cache.keys.ptr, kvStride: call.cache.capacity, n, approximation: A,
      scale: call.shape.scale,
    });
    const choice = this.chooseCounts(scores, n, A);
    const ranked = this.rankedRows(scores, choice);
    // deferredIndexWait: no host wait inside the build; its pairs are read once the attention is
    // enqueued. Below AUTO_MMA_MIN_CONTEXT only: from there the automatic kernel choice reads the pairs.
    const deferred = this.deferIndexWait && n < AUTO_MMA_MIN_CONTEXT ? this.builder.buildDeferred(scores, choice.counts, ranked) : null;
    const index = deferred?.index ?? this.builder.build(scores, choice.counts, ranked);
    this.rt.cuda.record(end, this.rt.stream);
    this.timed = true;
    this.attention.run({
      q: call.q, qRowStride: call.qRowStride, k: call.cache.keys.ptr, v: call.cache.values.ptr, kvStride: call.cache.capacity,
      out: call.out, numQueries: n, index, scale: call.shape.scale,
    });
    deferred?.settle();
    this.lastChoice = choice;
    this.lastIndex = index;
    return { attended: index.pairs.slice(), dense: new Float64Array(H).fill(causalPairs(n)) };
  }

  /** The search's ranks of these scores when it ran on them and hands off (else the builder selects itself). */
  private rankedRows(scores: VerticalSlashScores, choice: DeviceCountChoice): RankedRows | undefined {
    const ranks = this.search.deviceHandOff ? this.search.ranksOf(scores) : null;
    if (ranks === null) return undefined;
    // selectionHandOff: the search's answer counts and selection, read in place by the builder.
    const selection = choice.deviceCounts === undefined ? this.search.selectionOf(scores) : null;
    if (selection !== null) return { ranks, counts: selection.counts, selection };
    return choice.deviceCounts === undefined ? { ranks } : { ranks, counts: choice.deviceCounts };
  }

  lastEstimationMs(): number | null {
    if (!this.events || !this.timed) return null;
    return this.rt.cuda.elapsedMs(this.events[0], this.events[1]);
  }

  /** Returns the scratch buffers to the pool (they grow again on the next prompt). */
  reset(): void {
    this.rt.synchronize();
    this.estimator.release();
    this.builder.release();
    this.search.release();
    this.lastIndex = null;
  }
}

export class VerticalSlashDevicePrefill extends VerticalSlashFamilyDevicePrefill {
  readonly id = 'vertical_and_slash';

  /** searchOptions: absent, VERTICAL_SLASH_COUNT_SEARCH. */
  constructor(
    rt: CudaRuntime, shape: PrefillShape, readonly params: VerticalSlashDeviceParams, kernel?: VerticalSlashKernelChoice,
    searchOptions: CountSearchOptions = VERTICAL_SLASH_COUNT_SEARCH,
  ) {
    super(rt, shape, params.approximationSize, kernel, searchOptions);
  }

  protected chooseCounts(scores: VerticalSlashScores, n: number): DeviceCountChoice {
    const H = this.shape.numHeads;
    const uniform = (kv: number, ks: number): VerticalSlashCounts => ({ vertical: new Int32Array(H).fill(kv), slash: new Int32Array(H).fill(ks) });
    const { sparsity, verticalSize, slashSize } = this.params;
    let choice: VerticalSlashCountChoice;
    if (sparsity === null) {
      choice = { verticalSize: Math.min(verticalSize ?? DEFAULT_COUNT, n), slashSize: Math.min(slashSize ?? DEFAULT_COUNT, n) };
    } else {
      const found = this.search.counts(scores, sparsity);
      choice = { verticalSize: found.verticalSize, slashSize: found.slashSize };
      if (found.floor === 'exceeds') choice.note = FLOOR_EXCEEDED_NOTE(n);
    }
    return {
      counts: uniform(choice.verticalSize, choice.slashSize),
      summary: { verticalSize: choice.verticalSize, slashSize: choice.slashSize },
      ...(choice.note ? { note: choice.note } : {}),
    };
  }
}

export function verticalSlashDeviceParams(options: DeviceMethodOptions): VerticalSlashDeviceParams {
  const resolved = resolveOptions(verticalSlashMethod, options);
  return {
    approximationSize: intParam(resolved.params, 'approximationSize'),
    sparsity: resolved.sparsity,
    verticalSize: optionalIntParam(resolved.params, 'verticalSize'),
    slashSize: optionalIntParam(resolved.params, 'slashSize'),
  };
}

export const verticalSlashDeviceFactory: DevicePrefillFactory = verticalSlashFamilyFactory('vertical_and_slash',
  (rt, shape, options) => new VerticalSlashDevicePrefill(rt, shape, verticalSlashDeviceParams(options)));
