/**
 * Accuracy preservation: for every sparse configuration, a paired one-sided t-test over the
 * examples scored under both it and dense (same model, task, length, example index), with
 * H0: μ_sparse − μ_dense ≤ −δ. Rejecting H0 at level α means accuracy is preserved within the
 * margin δ. Per (model, task, length, method) the largest sparsity that passes is reported.
 * No multiple-comparison correction is applied (each test answers its own question).
 */
import { type ConfigResult, cellKey } from './aggregate.js';
import { type PairedTestResult, pairedNonInferiorityTest } from './stats.js';

export interface PreservationOptions {
  /** Significance level α of the one-sided test. */
  alpha: number;
  /** Margin δ: relative (fraction of the dense mean) or absolute (score units). */
  margin: number;
  marginKind: 'relative' | 'absolute';
}

export const DEFAULT_PRESERVATION: PreservationOptions = { alpha: 0.05, margin: 0.05, marginKind: 'relative' };

export interface PreservationTest {
  configKey: string;
  model: string;
  task: string;
  length: number;
  phase: 'prefill' | 'decode';
  method: string;
  sparsity: number;
  /** Measured sparsity of the configuration's phase (null: not measured); below \`sparsity\` for a
   *  method that cannot reach the target (FlexPrefill's budget floor, SnapKV's forced window). */
  achievedSparsity: number | null;
  denseMean: number;
  sparseMean: number;
  test: PairedTestResult;
  preserved: boolean;
}

export interface LargestPreserved {
  model: string;
  task: string;
  length: number;
  phase: 'prefill' | 'decode';
  method: string;
  /** Largest tested sparsity whose test passed; null when none did. */
  largestPreservedSparsity: number | null;
  /** The sparsity that configuration achieved (null when none passed or it was not measured): what
   *  a verdict is worth when the method fell short of the requested sparsity. */
  achievedAtLargest: number | null;
  /** Whether every tested sparsity up to that one also passed (the curve is not ragged). */
  monotone: boolean;
  tested: number[];
}

/** The paired scores of a sparse configuration and its dense baseline: examples scored in both. */
export function pairScores(sparse: ConfigResult, dense: ConfigResult): { sparse: number[]; dense: number[] } {
  const a: number[] = [], b: number[] = [];
  for (const [i, s] of sparse.scores) {
    const d = dense.scores.get(i);
    if (s === null || d === null || d === undefined) continue;
    a.push(s);
    b.push(d);
  }
  return { sparse: a, dense: b };
}

export function preservationTests(configs: readonly ConfigResult[], options: PreservationOptions = DEFAULT_PRESERVATION): PreservationTest[] {
  const dense = new Map<string, ConfigResult>();
  for (const c of configs) if (c.phase === 'dense') dense.set(cellKey(c), c);
  const out: PreservationTest[] = [];
  for (const c of configs) {
    if (c.phase === 'dense') continue;
    const base = dense.get(cellKey(c));
    if (!base) continue;
    const pairs = pairScores(c, base);
    const denseMean = pairs.dense.length ? pairs.dense.reduce((s, v) => s + v, 0) / pairs.dense.length : 0;
    const margin = options.marginKind === 'relative' ? options.margin * Math.abs(denseMean) : options.margin;
    const test = pairedNonInferiorityTest(pairs.sparse, pairs.dense, margin);
    out.push({
      configKey: c.configKey, model: c.model, task: c.task, length: c.length, phase: c.phase, method: c.method,
      sparsity: c.sparsity, achievedSparsity: c.achieved, denseMean, sparseMean: pairs.sparse.length ? pairs.sparse.reduce((s, v) => s + v, 0) / pairs.sparse.length : 0,
      test, preserved: test.pValue < options.alpha,
    });
  }
  return out;
}

export function largestPreservedSparsity(tests: readonly PreservationTest[]): LargestPreserved[] {
  const groups = new Map<string, PreservationTest[]>();
  for (const t of tests) {
    const k = `${t.model}|${t.task}|${t.length}|${t.phase}|${t.method}`;
    const g = groups.get(k);
    if (g) g.push(t); else groups.set(k, [t]);
  }
  const out: LargestPreserved[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => a.sparsity - b.sparsity);
    const passed = g.filter((t) => t.preserved);
    const best = passed.length ? passed[passed.length - 1] : null;
    const largest = best ? best.sparsity : null;
    const monotone = largest === null ? true : g.filter((t) => t.sparsity <= largest).every((t) => t.preserved);
    const f = g[0];
    out.push({ model: f.model, task: f.task, length: f.length, phase: f.phase, method: f.method, largestPreservedSparsity: largest, achievedAtLargest: best ? best.achievedSparsity : null, monotone, tested: g.map((t) => t.sparsity) });
  }
  return out;
}
