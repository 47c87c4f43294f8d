/**
 * The isoFLOPS view: accuracy against total FLOPs per example (prefill + decode, estimation
 * included) for every (model, method, sparsity), averaged over the tasks run, per context length
 * and phase; its Pareto frontier; and the question "at this compute, is a larger sparse model
 * better than a smaller dense one?".
 */
import type { ConfigResult } from './aggregate.js';
import { mean } from './stats.js';

export interface IsoFlopsPoint {
  model: string;
  modelParams: number;
  length: number;
  /** 'dense' or the phase the sparse method runs in. */
  phase: 'dense' | 'prefill' | 'decode';
  method: string;
  sparsity: number;
  /** Mean over tasks of the per-configuration mean score. */
  accuracy: number;
  /** Mean over tasks of the mean total FLOPs per example. */
  flops: number;
  tasks: number;
}

export interface IsoFlopsGroup {
  length: number;
  /** Which sparse phase the group compares (dense points appear in both). */
  phase: 'prefill' | 'decode';
  points: IsoFlopsPoint[];
  /** Points on the Pareto frontier, by increasing FLOPs. */
  frontier: IsoFlopsPoint[];
  comparisons: DenseVersusLargerSparse[];
}

export interface DenseVersusLargerSparse {
  dense: IsoFlopsPoint;
  /** Most accurate sparse point of a larger model whose FLOPs do not exceed the dense point's. */
  bestLargerSparse: IsoFlopsPoint | null;
  verdict: 'larger sparse is better' | 'smaller dense is at least as good' | 'no larger sparse model fits this compute';
}

/** Folds configurations that differ only by task into one point (tasks with no scored example left out). */
export function isoFlopsPoints(configs: readonly ConfigResult[]): IsoFlopsPoint[] {
  const groups = new Map<string, ConfigResult[]>();
  for (const c of configs) {
    const variant = c.requestedSparsity !== null ? `s=${c.requestedSparsity}` : JSON.stringify(c.params);
    const k = `${c.model}|${c.length}|${c.phase}|${c.method}|${variant}`;
    const g = groups.get(k);
    if (g) g.push(c); else groups.set(k, [c]);
  }
  const points: IsoFlopsPoint[] = [];
  for (const all of groups.values()) {
    // A configuration whose examples were all dropped has no accuracy: leave it out of the mean.
    const g = all.filter((c) => c.summary.n > 0);
    if (!g.length) continue;
    points.push({
      model: g[0].model,
      modelParams: g[0].modelParams,
      length: g[0].length,
      phase: g[0].phase,
      method: g[0].method,
      sparsity: mean(g.map((c) => c.sparsity)),
      accuracy: mean(g.map((c) => c.summary.mean)),
      flops: mean(g.map((c) => c.meanFlopsTotal)),
      tasks: g.length,
    });
  }
  return points;
}

/**
 * Points not dominated by another (one with no more FLOPs and strictly higher accuracy, or fewer
 * FLOPs and equal accuracy), ordered by FLOPs.
 */
export function paretoFrontier<P extends { flops: number; accuracy: number }>(points: readonly P[]): P[] {
  const sorted = [...points].sort((a, b) => a.flops - b.flops || b.accuracy - a.accuracy);
  const out: P[] = [];
  let best = -Infinity;
  for (const p of sorted) {
    if (p.accuracy > best) {
      out.push(p);
      best = p.accuracy;
    }
  }
  return out;
}

export function compareDenseWithLargerSparse(points: readonly IsoFlopsPoint[]): DenseVersusLargerSparse[] {
  const dense = points.filter((p) => p.phase === 'dense').sort((a, b) => a.modelParams - b.modelParams);
  return dense.map((d) => {
    const candidates = points.filter((p) => p.phase !== 'dense' && p.modelParams > d.modelParams && p.flops <= d.flops);
    if (!candidates.length) return { dense: d, bestLargerSparse: null, verdict: 'no larger sparse model fits this compute' as const };
    const best = candidates.reduce((a, b) => (b.accuracy > a.accuracy || (b.accuracy === a.accuracy && b.flops < a.flops) ? b : a));
    return {
      dense: d,
      bestLargerSparse: best,
      verdict: best.accuracy > d.accuracy ? ('larger sparse is better' as const) : ('smaller dense is at least as good' as const),
    };
  });
}

export function isoFlopsAnalysis(configs: readonly ConfigResult[]): IsoFlopsGroup[] {
  const points = isoFlopsPoints(configs);
  const lengths = [...new Set(points.map((p) => p.length))].sort((a, b) => a - b);
  const out: IsoFlopsGroup[] = [];
  for (const length of lengths) {
    for (const phase of ['prefill', 'decode'] as const) {
      const sparse = points.filter((p) => p.length === length && p.phase === phase);
      if (!sparse.length) continue;
      const group = [...points.filter((p) => p.length === length && p.phase === 'dense'), ...sparse];
      out.push({ length, phase, points: group, frontier: paretoFrontier(group), comparisons: compareDenseWithLargerSparse(group) });
    }
  }
  return out;
}
