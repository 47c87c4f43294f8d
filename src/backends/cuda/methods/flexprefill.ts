/**
 * FlexPrefill (the paper's variant) prefill on the GPU: the CPU method's rule
 * (src/methods/flexprefill.ts) over the Vertical-Slash kernels, all of its estimation on the device.
 * The estimate (last A = 512 queries, clamped to n) gives [H, n] column and diagonal scores; the
 * per-head budget rule runs on them where they are (kernels/flexprefill-coverage.cu): each score row
 * sorted descending, its float64 prefix sums scaled by 1/A (the CPU's sortedPrefixSumsOfFloat32, bit
 * for bit), then per alpha the CPU's coverCount and clamps, so only the 2H counts come back to the host.
 * For a target sparsity the CPU's alpha bisection (thresholdNearestTarget) runs on the device too, in
 * one cooperative launch (kernels/vertical-slash-search.cu): every probe sizes the heads from their
 * curves, selects and counts its exact pairs there; the host reads back alpha, then its 2H counts.
 * Selection, index and attention run as Vertical-Slash's.
 */
import { intParam, resolveOptions } from '../../../methods/options.js';
import { flexPrefillMethod } from '../../../methods/flexprefill.js';
import { FlexPrefillCoverage } from '../kernels/flexprefill-coverage.js';
import type { PrefillShape } from '../kernels/flash-prefill.js';
import type { VerticalSlashScores } from '../kernels/vertical-slash-estimate.js';
import type { VerticalSlashCounts } from '../kernels/vertical-slash-index.js';
import type { CountSearchOptions } from '../kernels/vertical-slash-search.js';
import type { VerticalSlashKernelChoice } from '../kernels/vertical-slash-prefill.js';
import type { CudaRuntime } from '../runtime.js';
import type { DeviceMethodOptions, DevicePrefillFactory } from './contract.js';
import { verticalSlashFamilyFactory } from './kernel-family-factories.js';
import { DEFAULT_COUNT_SEARCH, type DeviceCountChoice, VerticalSlashFamilyDevicePrefill } from './vertical-slash.js';

export interface FlexPrefillDeviceParams {
  approximationSize: number;
  minBudget: number;
  sparsity: number | null;
  alpha: number | null;
}

export class FlexPrefillDevicePrefill extends VerticalSlashFamilyDevicePrefill {
  readonly id = 'flexprefill';
  /** The coverage curves of the last call (until the next call or reset), for inspection. */
  readonly coverage: FlexPrefillCoverage;

  /** kernel, searchOptions: as VerticalSlashFamilyDevicePrefill's (absent: the defaults). */
  constructor(
    rt: CudaRuntime, shape: PrefillShape, readonly params: FlexPrefillDeviceParams, kernel?: VerticalSlashKernelChoice,
    searchOptions: CountSearchOptions = DEFAULT_COUNT_SEARCH,
  ) {
    super(rt, shape, params.approximationSize, kernel, searchOptions);
    this.coverage = new FlexPrefillCoverage(rt, shape.numHeads);
  }

  protected chooseCounts(scores: VerticalSlashScores, n: number, A: number): DeviceCountChoice {
    const H = this.shape.numHeads, { minBudget, sparsity } = this.params;
    this.coverage.build(scores, 1 / A);
    const sizesFor = (alpha: number): VerticalSlashCounts => this.coverage.sizes(alpha, minBudget);
    const summary = (alpha: number, note?: string): DeviceCountChoice => {
      const counts = sizesFor(alpha);
      const mean = (a: Int32Array) => Number((a.reduce((x, y) => x + y, 0) / H).toFixed(1));
      return {
        counts,
        deviceCounts: this.coverage.countsPtr, // what sizesFor just downloaded
        summary: { alpha: Number(alpha.toFixed(6)), minBudget, meanVerticalSize: mean(counts.vertical), meanSlashSize: mean(counts.slash) },
        ...(note ? { note } : {}),
      };
    };
    const clampNote = A < this.params.approximationSize ? `approximation size clamped to n=${n} (the original fails when n < ${this.params.approximationSize})` : undefined;
    if (sparsity === null) return summary(this.params.alpha ?? 0.65, clampNote);
    if (sparsity === 0) return summary(1, clampNote);
    const found = this.search.alpha(scores, this.coverage.curvesPtr, sparsity, minBudget);
    if (found.floor !== 'below') {
      const why = found.floor === 'exceeds' ? `min_budget=${minBudget} columns and diagonals (run as 64-wide blocks) exceed the budget at n=${n}` : undefined;
      return summary(0, [why, clampNote].filter(Boolean).join('; ') || undefined);
    }
    return summary(found.alpha, clampNote);
  }

  override reset(): void {
    super.reset();
    this.coverage.release();
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
