/**
 * Scaling law of sparse attention, log-linear in model size, context length and compression, with a
 * constant per task (the paper's Table 3 form: ε + δ_task + α·ln N + β·ln n + γ·ln k):
 *
 *   score ≈ σ(ε + δ_task + α · ln N + β · ln n + γ · ln k)     (link 'logit', the default)
 *   score ≈    ε + δ_task + α · ln N + β · ln n + γ · ln k      (link 'identity')
 *
 * N = non-embedding parameters, n = context length, k = 1/(1 − s) the compression ratio (k = 1 for
 * dense, whose rows anchor every method's fit); δ_task is 0 for the first task (alphabetically), so
 * ε is that task's intercept. One observation per (model, task, length, method, sparsity): the mean
 * score of the configuration. Fitted by least squares on the score scale (Gauss–Newton for the
 * logit link) per (phase, method) and pooled per phase.
 * Reported: the coefficients, in-sample R² and RMSE, cross-validated RMSE, and — as the paper
 * validates its laws — the error and R² on held-out configurations when the largest model, the
 * longest length and the highest compression are held out in turn.
 */
import { type ConfigResult, achievedOrRequested } from './aggregate.js';
import { goodnessOfFit, leastSquares } from './least-squares.js';
import { sigmoid, sigmoidLeastSquares } from './sigmoid-least-squares.js';
import { type RankCorrelation, spearman } from './stats.js';

export const SCALING_FEATURES = ['intercept', 'ln N', 'ln n', 'ln k'] as const;
export type ScalingFeature = (typeof SCALING_FEATURES)[number];

export interface ScalingObservation {
  model: string;
  params: number;
  task: string;
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
  /** R² of the predictions on the held-out rows (null below two rows). */
  r2: number | null;
  /** Spearman's ρ between observed and predicted scores on the held-out rows (the paper's Table 4). */
  spearman: RankCorrelation | null;
  /** The same per task. */
  spearmanByTask: Record<string, RankCorrelation>;
  /** Mean absolute error per task (the paper's Table 7). */
  maeByTask: Record<string, number>;
  /** Why the held-out fit could not be made (null when it was). */
  skipped: string | null;
}

export interface ScalingLawFit {
  phase: 'prefill' | 'decode';
  link: ScalingLink;
  /** A method name, or 'all' for the pooled fit of the phase. */
  method: string;
  rows: number;
  /** null: the feature was constant in the data (not identifiable) and left out. */
  coefficients: Record<ScalingFeature, number | null>;
  /** δ_task per task (0 for the baseline task); empty with a single task. */
  taskEffects: Record<string, number>;
  baselineTask: string | null;
  r2: number | null;
  rmse: number | null;
  /** Cross-validated RMSE: leave-one-out up to 200 points, 10 interleaved folds above. */
  cvRmse: number | null;
  cvFolds: number;
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

/** Continuous features that vary in the data (plus the intercept). */
function identifiable(rows: readonly ScalingObservation[]): ScalingFeature[] {
  return SCALING_FEATURES.filter((f) => {
    if (f === 'intercept') return true;
    if (f === 'ln N' && rows.some((r) => !(r.params > 0))) return false;
    const vals = rows.map((r) => featureValue(r, f));
    return Math.max(...vals) - Math.min(...vals) > 1e-9;
  });
}

interface Design {
  features: ScalingFeature[];
  /** Tasks with their own indicator column (every task but the baseline). */
  taskColumns: string[];
}

/**
 * How the linear predictor maps to the score: 'logit' (default) fits score ≈ σ(predictor), which
 * keeps predictions in [0, 1] and matches the coefficient scale of the paper's Table 3 (task offsets
 * above 10, intercepts near −17: logit-scale values); 'identity' fits the score itself.
 */
export type ScalingLink = 'logit' | 'identity';

interface Model extends Design {
  beta: number[];
  link: ScalingLink;
}

function row(o: ScalingObservation, d: Design): number[] {
  return [...d.features.map((f) => featureValue(o, f)), ...d.taskColumns.map((t) => (o.task === t ? 1 : 0))];
}

function fitRows(rows: readonly ScalingObservation[], design: Design, link: ScalingLink): Model {
  const X = rows.map((r) => row(r, design));
  const y = rows.map((r) => r.accuracy);
  const beta = link === 'logit' ? sigmoidLeastSquares(X, y).coefficients : leastSquares(X, y).coefficients;
  return { ...design, beta, link };
}

function predict(m: Model, o: ScalingObservation): number {
  const z = row(o, m).reduce((s, x, j) => s + m.beta[j] * x, 0);
  return m.link === 'logit' ? sigmoid(z) : z;
}

function tasksOf(rows: readonly ScalingObservation[]): string[] {
  return [...new Set(rows.map((r) => r.task))].sort();
}

function emptyCoefficients(): Record<ScalingFeature, number | null> {
  return { intercept: null, 'ln N': null, 'ln n': null, 'ln k': null };
}

/** Fits the law to observations of one (phase, method). */
export function fitScalingLaw(rows: readonly ScalingObservation[], phase: 'prefill' | 'decode', method: string, link: ScalingLink = 'logit'): ScalingLawFit {
  const tasks = tasksOf(rows);
  const empty = (reason: string): ScalingLawFit => ({
    phase, link, method, rows: rows.length, coefficients: emptyCoefficients(), taskEffects: {}, baselineTask: null,
    r2: null, rmse: null, cvRmse: null, cvFolds: 0, heldOut: [], points: rows.map((r) => ({ ...r, predicted: null })), skipped: reason,
  });
  const design: Design = { features: identifiable(rows), taskColumns: tasks.slice(1) };
  const width = design.features.length + design.taskColumns.length;
  if (!design.features.includes('ln k')) return empty('compression does not vary (need dense and at least one sparsity)');
  if (rows.length <= width) return empty(`${rows.length} points cannot fit ${width} coefficients with any error estimate`);
  let model: Model;
  try {
    model = fitRows(rows, design, link);
  } catch (e) {
    return empty((e as Error).message);
  }
  const predicted = rows.map((r) => predict(model, r));
  const gof = goodnessOfFit(rows.map((r) => r.accuracy), predicted);
  const coefficients = emptyCoefficients();
  design.features.forEach((f, j) => (coefficients[f] = model.beta[j]));
  const taskEffects: Record<string, number> = {};
  if (tasks.length > 1) {
    taskEffects[tasks[0]] = 0;
    design.taskColumns.forEach((t, j) => (taskEffects[t] = model.beta[design.features.length + j]));
  }

  // Cross-validation: leave-one-out up to 200 points, 10 interleaved folds above (a refit per point
  // would take minutes on the paper's grid with the Gauss–Newton fit).
  const folds = rows.length <= 200 ? rows.length : 10;
  let cvSq = 0, cvN = 0;
  for (let f = 0; f < folds; f++) {
    const held = rows.filter((_, j) => j % folds === f);
    const train = rows.filter((_, j) => j % folds !== f);
    const trainTasks = tasksOf(train);
    if (train.length <= width || !held.every((r) => trainTasks.includes(r.task))) continue;
    try {
      const m = fitRows(train, design, link);
      for (const r of held) {
        cvSq += (predict(m, r) - r.accuracy) ** 2;
        cvN++;
      }
    } catch {
      // A fold whose removal makes the design singular has no prediction.
    }
  }

  const heldOut: HeldOutError[] = [];
  const axes: [HeldOutError['axis'], ScalingFeature, (o: ScalingObservation) => number][] = [
    ['model size', 'ln N', (o) => o.params],
    ['length', 'ln n', (o) => o.length],
    ['compression', 'ln k', (o) => compressionRatio(o.sparsity)],
  ];
  for (const [axis, feature, value] of axes) {
    if (!design.features.includes(feature)) continue;
    const top = Math.max(...rows.map(value));
    const isTop = (r: ScalingObservation) => Math.abs(value(r) - top) <= 1e-9 * top;
    const test = rows.filter(isTop);
    const train = rows.filter((r) => !isTop(r));
    const result: HeldOutError = { axis, value: top, rows: test.length, rmse: null, mae: null, r2: null, spearman: null, spearmanByTask: {}, maeByTask: {}, skipped: null };
    const trainFeatures = identifiable(train);
    const trainTasks = tasksOf(train);
    if (!design.features.every((f) => trainFeatures.includes(f))) {
      result.skipped = `without the largest ${axis} the rest has one ${axis} value: cannot extrapolate`;
    } else if (!test.every((r) => trainTasks.includes(r.task))) {
      result.skipped = 'a held-out task has no training rows';
    } else if (train.length <= width) {
      result.skipped = `only ${train.length} training points remain`;
    } else {
      try {
        const m = fitRows(train, design, link);
        const preds = test.map((r) => predict(m, r));
        const errs = preds.map((p, i) => p - test[i].accuracy);
        result.rmse = Math.sqrt(errs.reduce((s, e) => s + e * e, 0) / errs.length);
        result.mae = errs.reduce((s, e) => s + Math.abs(e), 0) / errs.length;
        if (test.length >= 2) result.r2 = goodnessOfFit(test.map((r) => r.accuracy), preds).r2;
        result.spearman = spearman(test.map((r) => r.accuracy), preds);
        for (const task of tasksOf(test)) {
          const idx = test.map((r, i) => (r.task === task ? i : -1)).filter((i) => i >= 0);
          result.spearmanByTask[task] = spearman(idx.map((i) => test[i].accuracy), idx.map((i) => preds[i]));
          result.maeByTask[task] = idx.reduce((sum, i) => sum + Math.abs(errs[i]), 0) / idx.length;
        }
      } catch (e) {
        result.skipped = (e as Error).message;
      }
    }
    heldOut.push(result);
  }

  return {
    phase, link, method, rows: rows.length, coefficients, taskEffects, baselineTask: tasks.length > 1 ? tasks[0] : null,
    r2: gof.r2, rmse: gof.rmse, cvRmse: cvN ? Math.sqrt(cvSq / cvN) : null, cvFolds: folds, heldOut,
    points: rows.map((r, i) => ({ ...r, predicted: predicted[i] })), skipped: null,
  };
}

function observation(c: ConfigResult): ScalingObservation {
  return { model: c.model, params: c.modelParams, task: c.task, length: c.length, sparsity: achievedOrRequested(c), accuracy: c.summary.mean };
}

/** One fit per (phase, method) and one pooled per phase, each with the dense rows as k = 1. */
export function scalingLawFits(configs: readonly ConfigResult[], link: ScalingLink = 'logit'): ScalingLawFit[] {
  // Configurations whose examples were all dropped have no score to fit.
  const scored = configs.filter((c) => c.summary.n > 0);
  const dense = scored.filter((c) => c.phase === 'dense').map(observation);
  const out: ScalingLawFit[] = [];
  for (const phase of ['prefill', 'decode'] as const) {
    const sparse = scored.filter((c) => c.phase === phase);
    if (!sparse.length) continue;
    const methods = [...new Set(sparse.map((c) => c.method))].sort();
    for (const method of methods) {
      out.push(fitScalingLaw([...dense, ...sparse.filter((c) => c.method === method).map(observation)], phase, method, link));
    }
    if (methods.length > 1) out.push(fitScalingLaw([...dense, ...sparse.map(observation)], phase, 'all', link));
  }
  return out;
}
