/**
 * How the sparse benchmarks measure a GPU method (shared by bench/sparse.ts, which runs every method
 * on random q/k/v, and bench/sparse-activations.ts, which runs the prefill methods on a trained
 * model's captured q/k/v): achieved sparsity from the pair counts, the estimation's device time
 * (EstimationTiming), a NaN check of poisoned outputs, and one prefill call timed by device events.
 */
import { BF16_NAN_BITS } from '../src/backends/cuda/bf16.js';
import type { DevicePtr } from '../src/backends/cuda/context.js';
import type { DevicePrefillCall, DevicePrefillMethod, EstimationTiming } from '../src/backends/cuda/methods/contract.js';
import type { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';
import type { HeadCounts } from '../src/engine/attention.js';

/** Achieved sparsity 1 − Σ attended / Σ dense over the heads (0 when nothing was counted). */
export function achievedOf(c: HeadCounts): number {
  let a = 0, d = 0;
  for (let h = 0; h < c.attended.length; h++) {
    a += c.attended[h];
    d += c.dense[h];
  }
  return d === 0 ? 0 : 1 - a / d;
}

/** The upper median (the middle element of the sorted copy). */
export function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The method's last estimation time in ms, or null when it does not time one. */
export function estimationOf(method: object): number | null {
  const timing = method as Partial<EstimationTiming>;
  return typeof timing.lastEstimationMs === 'function' ? timing.lastEstimationMs() : null;
}

/** Device memory free now (bytes). */
export function freeBytes(rt: CudaRuntime): number {
  const free = new BigUint64Array(1), total = new BigUint64Array(1);
  rt.cuda.check(rt.cuda.api.cuMemGetInfo(free, total), 'cuMemGetInfo');
  return Number(free[0]);
}

/** Reads `rows` rows of `rowElements` bf16 values at row `first` of `buf`; true when any is NaN. */
export function hasNaN(rt: CudaRuntime, buf: DevicePtr, first: number, rows: number, rowElements: number): boolean {
  rt.synchronize();
  const bits = new Uint16Array(rows * rowElements);
  rt.cuda.download(bits, buf + BigInt(first * rowElements * 2));
  return bits.some((b) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0);
}

export function fmt(ms: number | null): string {
  return ms === null ? '-' : ms.toFixed(2);
}

export interface PrefillMeasurement {
  /** The pair counts of the checked (first) call. */
  counts: HeadCounts;
  /** Median device time of a whole call. */
  ms: number;
  /** Median estimation time, null when the method does not time one. */
  estimationMs: number | null;
  /** Median of (call − its own estimation), pairing the two numbers of the same call. */
  attentionMs: number;
}

/**
 * Poisons the output [T, H, D], runs once, checks its first and last 64 rows (fewer when T < 64) for
 * NaN, then times `repeats` calls one by one: each call's estimation time is read right after it, so
 * attention = total − estimation pairs numbers of the same call (methods with a host step in their
 * estimation vary from call to call by more than their attention takes). Throws on a NaN.
 */
export function measurePrefill(rt: CudaRuntime, method: DevicePrefillMethod, call: DevicePrefillCall, repeats: number): PrefillMeasurement {
  const { numHeads: H, headDim: D } = call.shape;
  const n = call.numQueries, rowElements = H * D;
  const checked = Math.min(64, n);
  rt.cuda.fill16Async(call.out, BF16_NAN_BITS, n * rowElements, rt.stream);
  const counts = method.prefill(call);
  if (hasNaN(rt, call.out, 0, checked, rowElements) || hasNaN(rt, call.out, n - checked, checked, rowElements)) {
    throw new Error(`NaN in the output rows checked (first and last ${checked})`);
  }
  const totals: number[] = [], estimations: number[] = [], attentions: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const total = timeOnDevice(rt, () => method.prefill(call), { warmup: 0, repeats: 1 }).medianMs;
    const est = estimationOf(method);
    totals.push(total);
    if (est !== null) estimations.push(est);
    attentions.push(total - (est ?? 0));
  }
  return { counts, ms: median(totals), estimationMs: estimations.length ? median(estimations) : null, attentionMs: median(attentions) };
}
