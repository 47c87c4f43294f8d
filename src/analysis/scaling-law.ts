/**
 * Scaling law of sparse attention, log-linear in model size, context length and compression:
 *
 *   accuracy ≈ β₀ + β_N · ln N + β_n · ln n + β_k · ln k
 *
 * N = non-embedding parameters, n = context length, k = 1/(1 − s) the compression ratio (k = 1 for
 * dense, whose rows anchor every method's fit). Accuracy is averaged over tasks per (model, length,
 * method, sparsity). Fitted by least squares per (phase, method) and pooled per phase. Reported: the
 * coefficients, R² and RMSE in sample, leave-one-out RMSE, and extrapolation error when the largest
 * model, the longest length and the highest compression are held out in turn.
 */
import type { ConfigResult } from './aggregate.js';
import { isoFlopsPoints, type IsoFlopsPoint } from './isoflops.js';
import { goodnessOfFit, leastSquares } from './least-squares.js';

export const SCALING_FEATURES = ['intercept', 'ln N', 'ln n', 'ln k'] as const;
export type ScalingFeature = (typeof SCALING_FEATURES)[number];

export interface ScalingObservation {
  model: string;
  params: number;
  length: number;
  sparsity: number;
  accuracy: number;
}

export interface HeldOutError {
  axis: 'model size' | 'length' | 'compression';
  /** The held-out value of that axis (the largest). */
  value: number;
  rows: number;
  rmse: number | null;
  mae: number | null;
  /** Why the held-out fit could not be made (null when it was). */
  skipped: string | null;
}

export interface ScalingLawFit {
  phase: 'prefill' | 'decode';
  /** A method name, or 'all' for the pooled fit of the phase. */
  method: string;
  rows: number;
  /** null: the feature was constant in the data (not identifiable) and left out. */
  coefficients: Record<ScalingFeature, number | null>;
  r2: number | null;
  rmse: number | null;
  looRmse: number | null;
  heldOut: HeldOutError[];
  points: (ScalingObservation & { predicted: number | null })[];
  skipped: string | null;
}

export function compressionRatio(sparsity: number): number {
  return 1 / Math.max(1e-9, 1 - sparsity);
}

function featureValue(o: ScalingObservation, f: ScalingFeature): number {
  switch (f) {
    case 'intercept': return 1;
    case 'ln N': return Math.log(o.params);
    case 'ln n': return Math.log(o.length);
    case 'ln k': return Math.log(compressionRatio(o.sparsity));
  }
}

/** Features that vary in the data (plus the intercept). */
function identifiable(rows: readonly ScalingObservation[]): ScalingFeature[] {
  return SCALING_FEATURES.filter((f) => {
    if (f === 'intercept') return true;
    if (f === 'ln N' && rows.some((r) => !(r.params > 0))) return false;
    const vals = rows.map((r) => featureValue(r, f));
    return Math.max(...vals) - Math.min(...vals) > 1e-9;
  });
}

interface Model {
  features: ScalingFeature[];
  beta: number[];
}

function fitRows(rows: readonly ScalingObservation[], features: ScalingFeature[]): Model {
  const X = rows.map((r) => features.map((f) => featureValue(r, f)));
  const fit = leastSquares(X, rows.map((r) => r.accuracy));
  return { features, beta: fit.coefficients };
}

function predict(m: Model, o: ScalingObservation): number {
  return m.features.reduce((s, f, j) => s + m.beta[j] * featureValue(o, f), 0);
}

/** Fits the law to observations; `label` fields are copied into the result. */
export function fitScalingLaw(rows: readonly ScalingObservation[], phase: 'prefill' | 'decode', method: string): ScalingLawFit {
  const empty = (reason: string): ScalingLawFit => ({
    phase, method, rows: rows.length, coefficients: { intercept: null, 'ln N': null, 'ln n': null, 'ln k': null },
    r2: null, rmse: null, looRmse: null, heldOut: [], points: rows.map((r) => ({ ...r, predicted: null })), skipped: reason,
  });
  const features = identifiable(rows);
  if (!features.includes('ln k')) return empty('compression does not vary (need dense and at least one sparsity)');
  if (rows.length <= features.length) return empty(`${rows.length} points cannot fit ${features.length} coefficients with any error estimate`);
  let model: Model;
  try {
    model = fitRows(rows, features);
  } catch (e) {
    return empty((e as Error).message);
  }
  const predicted = rows.map((r) => predict(model, r));
  const gof = goodnessOfFit(rows.map((r) => r.accuracy), predicted);
  const coefficients = { intercept: null, 'ln N': null, 'ln n': null, 'ln k': null } as Record<ScalingFeature, number | null>;
  features.forEach((f, j) => (coefficients[f] = model.beta[j]));

  // Leave-one-out: refit without each point, predict it.
  let looSq = 0, looN = 0;
  for (let i = 0; i < rows.length; i++) {
    const train = rows.filter((_, j) => j !== i);
    if (train.length <= features.length) continue;
    try {
      const m = fitRows(train, features);
      looSq += (predict(m, rows[i]) - rows[i].accuracy) ** 2;
      looN++;
    } catch {
      // A point whose removal makes the design singular has no LOO prediction.
    }
  }

  const heldOut: HeldOutError[] = [];
  const axes: [HeldOutError['axis'], ScalingFeature, (o: ScalingObservation) => number][] = [
    ['model size', 'ln N', (o) => o.params],
    ['length', 'ln n', (o) => o.length],
    ['compression', 'ln k', (o) => compressionRatio(o.sparsity)],
  ];
  for (const [axis, feature, value] of axes) {
    if (!features.includes(feature)) continue;
    const top = Math.max(...rows.map(value));
    const test = rows.filter((r) => Math.abs(value(r) - top) <= 1e-9 * top);
    const train = rows.filter((r) => Math.abs(value(r) - top) > 1e-9 * top);
    const result: HeldOutError = { axis, value: top, rows: test.length, rmse: null, mae: null, skipped: null };
    const trainFeatures = identifiable(train);
    if (!features.every((f) => trainFeatures.includes(f))) {
      result.skipped = `without the largest ${axis} the rest has one ${axis} value: cannot extrapolate`;
    } else if (train.length <= features.length) {
      result.skipped = `only ${train.length} training points remain`;
    } else {
      try {
        const m = fitRows(train, features);
        const errs = test.map((r) => predict(m, r) - r.accuracy);
        result.rmse = Math.sqrt(errs.reduce((s, e) => s + e * e, 0) / errs.length);
        result.mae = errs.reduce((s, e) => s + Math.abs(e), 0) / errs.length;
      } catch (e) {
        result.skipped = (e as Error).message;
      }
    }
    heldOut.push(result);
  }

  return {
    phase, method, rows: rows.length, coefficients, r2: gof.r2, rmse: gof.rmse,
    looRmse: looN ? Math.sqrt(looSq / looN) : null, heldOut,
    points: rows.map((r, i) => ({ ...r, predicted: predicted[i] })), skipped: null,
  };
}

function observation(p: IsoFlopsPoint): ScalingObservation {
  return { model: p.model, params: p.modelParams, length: p.length, sparsity: p.phase === 'dense' ? 0 : p.sparsity, accuracy: p.accuracy };
}

/** One fit per (phase, method) and one pooled per phase, each with the dense rows as k = 1. */
export function scalingLawFits(configs: readonly ConfigResult[]): ScalingLawFit[] {
  const points = isoFlopsPoints(configs);
  const dense = points.filter((p) => p.phase === 'dense').map(observation);
  const out: ScalingLawFit[] = [];
  for (const phase of ['prefill', 'decode'] as const) {
    const sparse = points.filter((p) => p.phase === phase);
    if (!sparse.length) continue;
    const methods = [...new Set(sparse.map((p) => p.method))].sort();
    for (const method of methods) {
      out.push(fitScalingLaw([...dense, ...sparse.filter((p) => p.method === method).map(observation)], phase, method));
    }
    if (methods.length > 1) out.push(fitScalingLaw([...dense, ...sparse.map(observation)], phase, 'all'));
  }
  return out;
}
