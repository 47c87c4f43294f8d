/**
 * Vertical-Slash prefill (MInference, with the paper's configuration). The last A = 256 queries score
 * all keys (causal inside the last A x A corner, softmax); a key's vertical score is its column sum,
 * a diagonal's slash score the sum along it. Columns 0..3 and offsets 0..63 are forced in, then the
 * top `verticalSize` columns and top `slashSize` offsets are kept (each clamped to n), and executed
 * as the original kernel does (see vertical-slash-pattern.ts). Selection is per query head.
 *
 * Budget: the original takes the counts (512 / 512). From a target sparsity s we keep the two counts
 * equal (the original's ratio) and choose them per layer, shared by every head, so that the layer's
 * exact attended pairs land on (1 - s) of the dense causal pairs: a bisection on the common count k,
 * then more columns alone to close the remaining gap (one column changes the count by at most n pairs).
 */
import { causalPairs, intParam, optionalIntParam } from './options.js';
import type { BudgetDescription, MethodDescriptor, ResolvedOptions } from './types.js';
import {
  type CountChoice, FORCED_COLUMNS, FORCED_DIAGONALS, type HeadEstimate, VerticalSlashFamilyPrefill,
} from './vertical-slash-prefill.js';
import { VerticalSlashBuilder, lastQueryEstimateFlops } from './vertical-slash-pattern.js';

export class VerticalSlashPrefill extends VerticalSlashFamilyPrefill {
  readonly id = 'vertical_and_slash';

  constructor(
    approximationSize: number,
    readonly sparsity: number | null,
    readonly verticalSize: number | null,
    readonly slashSize: number | null,
  ) {
    super(approximationSize);
  }

  private layerPairs(estimates: HeadEstimate[], n: number, kv: number, ks: number): number {
    let total = 0;
    for (const est of estimates) total += this.pairsFor(est, n, kv, ks);
    return total;
  }

  protected chooseCounts(estimates: HeadEstimate[], n: number): CountChoice {
    const H = estimates.length;
    const fill = (v: number, s: number): CountChoice => ({
      verticalSizes: new Int32Array(H).fill(Math.min(v, n)),
      slashSizes: new Int32Array(H).fill(Math.min(s, n)),
      counts: { verticalSize: Math.min(v, n), slashSize: Math.min(s, n) },
    });
    if (this.sparsity === null) return fill(this.verticalSize ?? 512, this.slashSize ?? 512);
    const target = (1 - this.sparsity) * H * causalPairs(n);
    const minV = Math.min(FORCED_COLUMNS, n), minS = Math.min(FORCED_DIAGONALS, n);
    const floorPairs = this.layerPairs(estimates, n, minV, minS);
    if (floorPairs >= target) {
      const choice = fill(minV, minS);
      if (floorPairs > target) {
        choice.note = `forced sink columns 0..3 and the 64 nearest diagonals (run as 64-wide blocks) exceed the budget at n=${n}`;
      }
      return choice;
    }
    // Largest common count k with pairs(k, k) <= target (pairs grow with k).
    let lo = minS, hi = n;
    if (this.layerPairs(estimates, n, lo, lo) > target) {
      // Even minS columns are too many: only columns can be tuned, between minV and minS.
      return this.closestColumns(estimates, n, minV, minS, minS, target, fill);
    }
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.layerPairs(estimates, n, mid, mid) <= target) lo = mid; else hi = mid - 1;
    }
    if (lo >= n) return fill(n, n);
    return this.closestColumns(estimates, n, lo, n, lo, target, fill);
  }

  /** Column count in [vLo, vHi] (slash count fixed) whose layer pairs are closest to the target. */
  private closestColumns(
    estimates: HeadEstimate[], n: number, vLo: number, vHi: number, ks: number, target: number,
    fill: (v: number, s: number) => CountChoice,
  ): CountChoice {
    let lo = vLo, hi = vHi;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.layerPairs(estimates, n, mid, ks) <= target) lo = mid; else hi = mid - 1;
    }
    let best = lo;
    if (lo < vHi) {
      const below = target - this.layerPairs(estimates, n, lo, ks);
      const above = this.layerPairs(estimates, n, lo + 1, ks) - target;
      if (above < below) best = lo + 1;
    }
    return fill(best, ks);
  }
}

function parse(options: ResolvedOptions) {
  return {
    approximationSize: intParam(options.params, 'approximationSize'),
    verticalSize: optionalIntParam(options.params, 'verticalSize'),
    slashSize: optionalIntParam(options.params, 'slashSize'),
  };
}

/** Pairs of the forced pattern alone (columns 0..3, offsets 0..63): content-independent. */
export function forcedPatternPairs(n: number): number {
  const builder = new VerticalSlashBuilder();
  const rankV = new Int32Array(n), rankS = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    rankV[j] = j; // columns 0..3 rank first
    rankS[j] = j; // offsets 0..63 rank first
  }
  builder.select(n, rankV, Math.min(FORCED_COLUMNS, n), rankS, Math.min(FORCED_DIAGONALS, n));
  return builder.countPairs(n);
}

export const verticalSlashMethod: MethodDescriptor = {
  id: 'vertical_and_slash',
  title: 'Vertical-Slash (MInference)',
  phase: 'prefill',
  taxonomy: { unit: 'columns+diagonals', importance: 'last queries x all keys', budget: 'fixed counts', kvCache: 'full' },
  summary: 'top columns and diagonals from the last queries\' attention, executed in 64-wide blocks',
  params: [
    { name: 'approximationSize', kind: 'integer', default: 256, min: 1, description: 'last queries used for the estimate (A)' },
    { name: 'verticalSize', kind: 'integer', min: FORCED_COLUMNS, originalDefault: 512, description: 'kept columns; replaces sparsity' },
    { name: 'slashSize', kind: 'integer', min: FORCED_DIAGONALS, originalDefault: 512, description: 'kept diagonals; replaces sparsity' },
  ],
  budgetParams: ['verticalSize', 'slashSize'],
  create(options) {
    const p = parse(options);
    return { prefill: new VerticalSlashPrefill(p.approximationSize, options.sparsity, p.verticalSize, p.slashSize) };
  },
  estimationFlops(shape, n, params) {
    const A = Number(params.approximationSize);
    return { atPrefill: lastQueryEstimateFlops(shape.numHeads, shape.headDim, n, A), perDecodeToken: 0 };
  },
  describeBudget(n, options): BudgetDescription {
    const p = parse(options);
    const floor = 1 - forcedPatternPairs(n) / causalPairs(n);
    if (options.sparsity === null) {
      return {
        requested: null,
        counts: { verticalSize: Math.min(p.verticalSize ?? 512, n), slashSize: Math.min(p.slashSize ?? 512, n), approximationSize: Math.min(p.approximationSize, n) },
        expectedSparsity: null,
        tolerance: 1,
        resolution: 1,
        note: 'counts given: the achieved sparsity depends on the content',
      };
    }
    const s = options.sparsity;
    const desc: BudgetDescription = {
      requested: s,
      counts: { verticalSize: 'searched per layer (>= slashSize)', slashSize: 'searched per layer', approximationSize: Math.min(p.approximationSize, n) },
      expectedSparsity: Math.min(s, floor),
      // One column adds at most n pairs to one head; the layer search lands within one column.
      tolerance: 2 / (n + 1) + 1e-9,
      resolution: 2 / (n + 1) + 1e-9,
    };
    if (floor < s) desc.note = `forced sink columns 0..3 and the 64 nearest diagonals (run as 64-wide blocks) keep at least ${((1 - floor) * 100).toFixed(1)}% of pairs at n=${n}`;
    return desc;
  },
};
