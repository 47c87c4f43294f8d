/**
 * FlexPrefill (the paper's variant) prefill on the GPU: the CPU method's rule
 * (src/methods/flexprefill.ts) over the Vertical-Slash kernels. The estimate (last A = 512 queries,
 * clamped to n) runs on the device; the per-head budget rule — sort each head's scores, count the
 * prefix sums (scaled by 1/A) up to alpha, add one, at least min_budget — runs on the host over the
 * downloaded [H, n] column and diagonal scores (two n-element radix sorts per head: the CPU method's
 * sortedPrefixSums, bit for bit, 2.7x faster; then its coverCount, thresholdNearestTarget). For a target sparsity
 * the alpha bisection's probes count their exact pairs on the device. Selection, index and attention
 * run as Vertical-Slash's.
 */
import { FORCED_COLUMNS, FORCED_DIAGONALS } from '../../../methods/vertical-slash-prefill.js';
import { causalPairs, intParam, resolveOptions } from '../../../methods/options.js';
import { coverCount, flexPrefillMethod, sortedPrefixSumsOfFloat32, thresholdNearestTarget } from '../../../methods/flexprefill.js';
import type { PrefillShape } from '../kernels/flash-prefill.js';
import type { VerticalSlashScores } from '../kernels/vertical-slash-estimate.js';
import type { VerticalSlashCounts } from '../kernels/vertical-slash-index.js';
import type { VerticalSlashRowTiles } from '../kernels/vertical-slash-prefill.js';
import type { CudaRuntime } from '../runtime.js';
import type { DeviceMethodOptions, DevicePrefillFactory } from './contract.js';
import { verticalSlashFamilyFactory } from './kernel-family-factories.js';
import { type DeviceCountChoice, VerticalSlashFamilyDevicePrefill } from './vertical-slash.js';

export interface FlexPrefillDeviceParams {
  approximationSize: number;
  minBudget: number;
  sparsity: number | null;
  alpha: number | null;
}

/** Per head: prefix sums of its scores sorted descending, scaled by 1/A (the coverage curve). */
interface Coverage {
  vertical: Float64Array;
  slash: Float64Array;
}

export class FlexPrefillDevicePrefill extends VerticalSlashFamilyDevicePrefill {
  readonly id = 'flexprefill';

  constructor(rt: CudaRuntime, shape: PrefillShape, readonly params: FlexPrefillDeviceParams, mTiles?: VerticalSlashRowTiles) {
    super(rt, shape, params.approximationSize, mTiles);
  }

  /** [H] coverage curves from the device scores (synchronises). */
  private coverage(scores: VerticalSlashScores, n: number, A: number): Coverage[] {
    const H = this.shape.numHeads;
    this.rt.synchronize();
    const vertical = new Float32Array(H * n), slash = new Float32Array(H * n);
    this.rt.cuda.download(vertical, scores.vertical);
    this.rt.cuda.download(slash, scores.slash);
    return Array.from({ length: H }, (_, h) => ({
      vertical: sortedPrefixSumsOfFloat32(vertical.subarray(h * n, (h + 1) * n), 1 / A),
      slash: sortedPrefixSumsOfFloat32(slash.subarray(h * n, (h + 1) * n), 1 / A),
    }));
  }

  /** The CPU method's per-head sizes for one alpha. */
  private sizesFor(coverage: Coverage[], n: number, alpha: number): VerticalSlashCounts {
    const H = coverage.length, { minBudget } = this.params;
    const minV = Math.min(FORCED_COLUMNS, n), minS = Math.min(FORCED_DIAGONALS, n);
    const vertical = new Int32Array(H), slash = new Int32Array(H);
    for (let h = 0; h < H; h++) {
      vertical[h] = Math.max(minV, Math.min(n, Math.max(minBudget, coverCount(coverage[h].vertical, n, alpha))));
      slash[h] = Math.max(minS, Math.min(n, Math.max(minBudget, coverCount(coverage[h].slash, n, alpha))));
    }
    return { vertical, slash };
  }

  protected chooseCounts(scores: VerticalSlashScores, n: number, A: number): DeviceCountChoice {
    const coverage = this.coverage(scores, n, A);
    const H = coverage.length, { minBudget, sparsity } = this.params;
    const summary = (alpha: number, note?: string): DeviceCountChoice => {
      const counts = this.sizesFor(coverage, n, alpha);
      const mean = (a: Int32Array) => Number((a.reduce((x, y) => x + y, 0) / H).toFixed(1));
      return {
        counts,
        summary: { alpha: Number(alpha.toFixed(6)), minBudget, meanVerticalSize: mean(counts.vertical), meanSlashSize: mean(counts.slash) },
        ...(note ? { note } : {}),
      };
    };
    const clampNote = A < this.params.approximationSize ? `approximation size clamped to n=${n} (the original fails when n < ${this.params.approximationSize})` : undefined;
    if (sparsity === null) return summary(this.params.alpha ?? 0.65, clampNote);
    if (sparsity === 0) return summary(1, clampNote);
    const target = (1 - sparsity) * H * causalPairs(n);
    const pairsAt = (alpha: number) => this.layerPairs(scores, this.sizesFor(coverage, n, alpha));
    const floor = pairsAt(0);
    if (floor >= target) {
      const why = floor > target ? `min_budget=${minBudget} columns and diagonals (run as 64-wide blocks) exceed the budget at n=${n}` : undefined;
      return summary(0, [why, clampNote].filter(Boolean).join('; ') || undefined);
    }
    return summary(thresholdNearestTarget(pairsAt, target, floor), clampNote);
  }
}

export function flexPrefillDeviceParams(options: DeviceMethodOptions): FlexPrefillDeviceParams {
  const resolved = resolveOptions(flexPrefillMethod, options);
  const alpha = resolved.params.alpha;
  return {
    approximationSize: intParam(resolved.params, 'approximationSize'),
    minBudget: intParam(resolved.params, 'minBudget'),
    sparsity: resolved.sparsity,
    alpha: typeof alpha === 'number' ? alpha : null,
  };
}

export const flexPrefillDeviceFactory: DevicePrefillFactory = verticalSlashFamilyFactory('flexprefill',
  (rt, shape, options) => new FlexPrefillDevicePrefill(rt, shape, flexPrefillDeviceParams(options)));
