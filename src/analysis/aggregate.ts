/**
 * Per-configuration results (SPEC section 3 "Results"): mean and ddof-1 variance of the per-example
 * metric with a Student-t 95% interval, how many examples were dropped, the per-example scores
 * (kept for the paired tests), and the measured achieved sparsity, FLOPs and timings.
 */
import type { ConfigPhase } from '../experiments/spec.js';
import type { ConfigurationIdentity, ExampleRow } from '../experiments/results-db.js';
import { listMethods } from '../methods/index.js';
import { type Summary, mean, summarize } from './stats.js';

export interface ConfigResult extends ConfigurationIdentity {
  /**
   * The method as analysis groups, labels and fits it: the id, followed by the fixed parameters that
   * are not on its sparsity axis when the experiment gave any (`block_sparse[chunkSize=64]`), so two
   * configurations of one method are two curves, two preservation tests and two scaling-law fits.
   * `methodId` keeps the registry's id.
   */
  method: string;
  methodId: string;
  summary: Summary;
  /** Score per example index (null: dropped). */
  scores: Map<number, number | null>;
  /** Mean over examples of the pair-weighted achieved sparsity of each phase (null: not measured). */
  achievedPrefill: number | null;
  achievedDecode: number | null;
  /** Achieved sparsity of the configuration's own phase (0 for dense). */
  achieved: number | null;
  /** The sparsity used on plots and in fits: requested, or achieved for swept methods. */
  sparsity: number;
  meanFlopsPrefill: number;
  meanFlopsDecode: number;
  meanFlopsTotal: number;
  meanPrefillMs: number;
  meanDecodeMs: number;
  meanInputTokens: number;
  meanOutputTokens: number;
}

/**
 * Where a configuration sits on a sparsity axis that claims what was bought: the measured sparsity
 * of its phase when there is one (a method can fall short of its target: FlexPrefill at its budget
 * floor, SnapKV's kept window), else the requested one.
 */
export function achievedOrRequested(c: Pick<ConfigResult, 'phase' | 'achieved' | 'sparsity'>): number {
  return c.phase === 'dense' ? 0 : c.achieved ?? c.sparsity;
}

function meanOrNull(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? mean(v) : null;
}

/** A label that tells configurations of one method apart (the swept parameter, when present). */
export function methodLabel(c: Pick<ConfigResult, 'method' | 'phase'>): string {
  return c.phase === 'dense' ? 'dense' : `${c.method} (${c.phase})`;
}

/** Budget (sparsity-axis) parameters per method id: they vary along a curve, so they name no variant. */
const BUDGET_PARAMS = new Map(listMethods().map((m) => [m.id, new Set(m.budgetParams)]));

/**
 * `method[k=v,…]` over the configuration's parameters that are not budget parameters of the method
 * (sorted by name), or the bare id when there are none. A method the registry does not know keeps all
 * of its parameters in the name, so nothing recorded is merged by mistake.
 */
export function methodVariant(methodId: string, params: Readonly<Record<string, number | string | boolean>>): string {
  const budget = BUDGET_PARAMS.get(methodId);
  const fixed = Object.keys(params).filter((k) => !budget?.has(k)).sort();
  return fixed.length === 0 ? methodId : `${methodId}[${fixed.map((k) => `${k}=${params[k]}`).join(',')}]`;
}

export function aggregateByConfiguration(rows: readonly ExampleRow[]): ConfigResult[] {
  const groups = new Map<string, ExampleRow[]>();
  for (const r of rows) {
    const g = groups.get(r.configKey);
    if (g) g.push(r); else groups.set(r.configKey, [r]);
  }
  const out: ConfigResult[] = [];
  for (const [configKey, g] of groups) {
    const first = g[0];
    const achievedPrefill = meanOrNull(g.map((r) => r.prefillSparsity));
    const achievedDecode = meanOrNull(g.map((r) => r.decodeSparsity));
    const achieved = first.phase === 'dense' ? 0 : first.phase === 'prefill' ? achievedPrefill : achievedDecode;
    out.push({
      configKey,
      model: first.model,
      modelParams: first.modelParams,
      task: first.task,
      length: first.length,
      phase: first.phase,
      method: methodVariant(first.method, first.params),
      methodId: first.method,
      requestedSparsity: first.requestedSparsity,
      params: first.params,
      summary: summarize(g.map((r) => r.score)),
      scores: new Map(g.map((r) => [r.exampleIndex, r.score])),
      achievedPrefill,
      achievedDecode,
      achieved,
      sparsity: first.requestedSparsity ?? achieved ?? 0,
      meanFlopsPrefill: mean(g.map((r) => r.flopsPrefill)),
      meanFlopsDecode: mean(g.map((r) => r.flopsDecode)),
      meanFlopsTotal: mean(g.map((r) => r.flopsTotal)),
      meanPrefillMs: mean(g.map((r) => r.prefillMs)),
      meanDecodeMs: mean(g.map((r) => r.decodeMs)),
      meanInputTokens: mean(g.map((r) => r.inputTokens)),
      meanOutputTokens: mean(g.map((r) => r.outputTokens)),
    });
  }
  return out.sort(
    (a, b) =>
      a.modelParams - b.modelParams || a.model.localeCompare(b.model) || a.task.localeCompare(b.task) || a.length - b.length ||
      phaseOrder(a.phase) - phaseOrder(b.phase) || a.method.localeCompare(b.method) || a.sparsity - b.sparsity,
  );
}

function phaseOrder(p: ConfigPhase): number {
  return p === 'dense' ? 0 : p === 'prefill' ? 1 : 2;
}

/** Key of the (model, task, length) cell a configuration belongs to. */
export function cellKey(c: Pick<ConfigResult, 'model' | 'task' | 'length'>): string {
  return `${c.model}|${c.task}|${c.length}`;
}
