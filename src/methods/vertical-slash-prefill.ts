/**
 * The prefill driver shared by Vertical-Slash and FlexPrefill: estimate every query head from the last
 * A queries, let the method choose (vertical count, slash count) per head, build each head's executed
 * layout and run it. The two methods differ only in how they choose the counts.
 */
import { type HeadCounts, type PrefillAttention, type PrefillCall, emptyCounts } from '../engine/attention.js';
import { QueryRunScratch } from '../backends/cpu/sparse-attention.js';
import { assertWholePromptCall, causalPairs } from './options.js';
import { IndexScratch } from './select.js';
import {
  VerticalSlashBuilder, type VerticalSlashLayout, attendVerticalSlash, forcedRanks, lastQueryScores,
} from './vertical-slash-pattern.js';
import type { BudgetDecision } from './types.js';

/** Columns 0..3 (sinks) and the 64 nearest diagonals are always kept, in both methods. */
export const FORCED_COLUMNS = 4;
export const FORCED_DIAGONALS = 64;

/** One query head's estimate: raw scores and the forced-first ranks. */
export interface HeadEstimate {
  /** [n] summed softmax weight per key (column). */
  vertical: Float64Array;
  /** [n] summed softmax weight per diagonal offset (o = query - key). */
  slash: Float64Array;
  rankV: Int32Array;
  rankS: Int32Array;
}

export interface CountChoice {
  /** [H] kept columns per query head. */
  verticalSizes: Int32Array;
  /** [H] kept diagonals per query head. */
  slashSizes: Int32Array;
  counts: Record<string, number | string>;
  note?: string;
}

export abstract class VerticalSlashFamilyPrefill implements PrefillAttention {
  abstract readonly id: string;
  readonly requiresWholePrompt = true;
  readonly lastDecisions = new Map<number, BudgetDecision>();
  /** When true, the executed layouts of the last call are kept (one per query head), for inspection. */
  keepLayouts = false;
  lastLayouts: VerticalSlashLayout[] = [];
  protected builder = new VerticalSlashBuilder();
  private run = new QueryRunScratch();
  private idx = new IndexScratch();

  constructor(readonly approximationSize: number) {}

  protected abstract chooseCounts(estimates: HeadEstimate[], n: number, A: number): CountChoice;

  /** Exact pairs of one head for the given counts. */
  protected pairsFor(est: HeadEstimate, n: number, kv: number, ks: number): number {
    this.builder.select(n, est.rankV, Math.min(kv, n), est.rankS, Math.min(ks, n));
    return this.builder.countPairs(n);
  }

  prefill(call: PrefillCall): HeadCounts {
    const { shape, queries, numQueries: n, cache, out, layer } = call;
    assertWholePromptCall(this.id, call);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    const g = H / Hkv;
    // The original fails when the prompt is shorter than A; we clamp A to n.
    const A = Math.min(this.approximationSize, n);
    const rows = [new Float64Array(n), new Float64Array(n), new Float64Array(n), new Float64Array(n)];
    const estimates: HeadEstimate[] = [];
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / g);
      const est: HeadEstimate = {
        vertical: new Float64Array(n), slash: new Float64Array(n), rankV: new Int32Array(n), rankS: new Int32Array(n),
      };
      lastQueryScores(queries, n, H, D, h, cache.keys[kvh], A, shape.scale, shape.logitSoftcap, est.vertical, est.slash, rows);
      forcedRanks(est.vertical, n, FORCED_COLUMNS, this.idx, est.rankV);
      forcedRanks(est.slash, n, FORCED_DIAGONALS, this.idx, est.rankS);
      estimates.push(est);
    }
    const choice = this.chooseCounts(estimates, n, A);
    const counts = emptyCounts(H);
    let originalCells = 0;
    this.lastLayouts = [];
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / g);
      const layout = this.layoutFor(estimates[h], n, choice.verticalSizes[h], choice.slashSizes[h]);
      if (this.keepLayouts) this.lastLayouts.push(layout);
      originalCells += layout.originalCells;
      counts.attended[h] = attendVerticalSlash(
        queries, H, D, h, cache.keys[kvh], cache.values[kvh], layout, shape.scale, shape.logitSoftcap, out, this.run,
      );
      counts.dense[h] = causalPairs(n);
    }
    this.lastDecisions.set(layer, {
      layer,
      counts: {
        ...choice.counts,
        approximationSize: A,
        // The original's own statistic (whole 64x64 blocks and 64-row column strips, cells above the
        // diagonal included): shown for comparison only; it can be negative at short n.
        originalStatisticSparsity: Number((1 - originalCells / (H * causalPairs(n))).toFixed(4)),
      },
      ...(choice.note ? { note: choice.note } : {}),
    });
    return counts;
  }

  /** Build one head's executed layout for the chosen counts. */
  layoutFor(est: HeadEstimate, n: number, kv: number, ks: number): VerticalSlashLayout {
    this.builder.select(n, est.rankV, Math.min(kv, n), est.rankS, Math.min(ks, n));
    return this.builder.build(n);
  }
}
