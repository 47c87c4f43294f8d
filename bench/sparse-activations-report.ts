/**
 * The rows of bench/sparse-activations.ts (pure, no GPU): per-layer results of one (data, task, n,
 * method, s) case folded into one row — sums over layers, means over examples, ratios from the sums,
 * spreads from the per-(example, layer) cells — their order in the table (data sets side by side) and
 * the markdown table docs/perf.md takes as it is.
 */
import { fmt } from './sparse-prefill-measure.js';
import { type ProductUnionCount, type TilingWork, unionFactor } from './block-sparse-product-union.js';

/** What one layer's inputs were: a trained model's (captured), random, or captured with heads repeated. */
export type DataKind = 'activations' | 'random' | `replicated x${number}`;

/** One (example, layer)'s measurement of one method at one s. */
export interface LayerResult {
  example: number;
  layer: number;
  n: number;
  /** Σ over heads of the method's attended and dense-causal pairs (HeadCounts). */
  attended: number;
  dense: number;
  estimationMs: number | null;
  attentionMs: number;
  denseMs: number;
  /** block_sparse only: its 64-row products against the pairs they attend. */
  union: ProductUnionCount | null;
  /** block_sparse only: the automatic wgmma tiling's computed steps against the pairs they attend. */
  tiling: TilingWork | null;
}

export interface CaseSummary {
  data: DataKind;
  task: string;
  /** Nominal n; the examples' real lengths (chat template included) in `lengths`. */
  n: number;
  lengths: number[];
  method: string;
  s: number;
  examples: number;
  layers: number;
  /** 1 − Σ attended / Σ dense over every example, layer and head; min / max over the (example, layer) cells. */
  achieved: number;
  achievedMin: number;
  achievedMax: number;
  /** Sums over the layers, mean over the examples. */
  estimationMs: number | null;
  attentionMs: number;
  denseMs: number;
  /** Σ attention / ((1 − achieved)·Σ dense); min / max of the same ratio per (example, layer). */
  ratioAchieved: number;
  ratioMin: number;
  ratioMax: number;
  /** block_sparse: Σ computed / Σ attended pairs of its 64-row products; null for other methods. */
  unionFactor: number | null;
  /** block_sparse: the same for the automatic tiling's steps, and which tiling(s) ran. */
  tilingFactor: number | null;
  tilings: string[];
}

/** Folds one case's per-layer results into its row (see CaseSummary for each field's rule). */
export function summarizeCase(
  key: { data: DataKind; task: string; n: number; method: string; s: number }, lengths: number[], results: LayerResult[],
): CaseSummary {
  if (!results.length) throw new Error(`summarize ${key.data} ${key.task} n=${key.n} ${key.method} s=${key.s}: no layer results`);
  const examples = new Set(results.map((r) => r.example)).size;
  const layers = new Set(results.map((r) => r.layer)).size;
  let attended = 0, dense = 0, attentionMs = 0, denseMs = 0, estimationMs = 0, timedEstimations = 0;
  let achievedMin = Infinity, achievedMax = -Infinity, ratioMin = Infinity, ratioMax = -Infinity;
  const unions: ProductUnionCount[] = [];
  const tilingWork: TilingWork[] = [];
  for (const r of results) {
    attended += r.attended;
    dense += r.dense;
    attentionMs += r.attentionMs;
    denseMs += r.denseMs;
    if (r.estimationMs !== null) {
      estimationMs += r.estimationMs;
      timedEstimations++;
    }
    const a = r.dense === 0 ? 0 : 1 - r.attended / r.dense;
    const ratio = r.attentionMs / ((1 - a) * r.denseMs);
    achievedMin = Math.min(achievedMin, a);
    achievedMax = Math.max(achievedMax, a);
    ratioMin = Math.min(ratioMin, ratio);
    ratioMax = Math.max(ratioMax, ratio);
    if (r.union) unions.push(r.union);
    if (r.tiling) tilingWork.push(r.tiling);
  }
  if (timedEstimations !== 0 && timedEstimations !== results.length) {
    throw new Error(`summarize ${key.method}: ${timedEstimations} of ${results.length} layer calls timed an estimation`);
  }
  const achieved = dense === 0 ? 0 : 1 - attended / dense;
  return {
    ...key, lengths, examples, layers, achieved, achievedMin, achievedMax,
    estimationMs: timedEstimations ? estimationMs / examples : null, attentionMs: attentionMs / examples, denseMs: denseMs / examples,
    ratioAchieved: attentionMs / ((1 - achieved) * denseMs), ratioMin, ratioMax,
    unionFactor: unions.length ? unionFactor(...unions) : null,
    tilingFactor: tilingWork.length ? unionFactor(...tilingWork) : null,
    tilings: [...new Set(tilingWork.map((w) => w.tiling))],
  };
}

/**
 * Row order of the table: by n, method (registry order), s, then the data sets side by side: the
 * tasks' activations (in `tasks` order), their replicated heads, random last.
 */
export function sideBySide(methodOrder: string[], taskOrder: string[]): (a: CaseSummary, b: CaseSummary) => number {
  const dataRank = (d: DataKind): number => (d === 'activations' ? 0 : d === 'random' ? 2 : 1);
  const rank = (order: string[], x: string): number => (order.includes(x) ? order.indexOf(x) : order.length);
  return (a, b) => a.n - b.n || rank(methodOrder, a.method) - rank(methodOrder, b.method) || a.s - b.s ||
    dataRank(a.data) - dataRank(b.data) || rank(taskOrder, a.task) - rank(taskOrder, b.task);
}

/** The rows as one markdown table (docs/perf.md takes it as it is). */
export function summaryTable(rows: CaseSummary[]): string {
  const range = (lo: number, hi: number, digits: number): string => `${lo.toFixed(digits)}–${hi.toFixed(digits)}`;
  const lines = [
    '| data | task | n | method | s | achieved s (layers) | estimation ms | attention ms | dense ms | attention / ((1 − achieved)·dense) (layers) | computed / attended: 64-row union, tiling |',
    '| --- | --- | --: | --- | --: | --- | --: | --: | --: | --- | --- |',
  ];
  for (const r of rows) {
    lines.push(`| ${r.data} | ${r.task} | ${r.n} | ${r.method} | ${r.s} | ${r.achieved.toFixed(3)} (${range(r.achievedMin, r.achievedMax, 3)}) | ` +
      `${fmt(r.estimationMs)} | ${r.attentionMs.toFixed(3)} | ${r.denseMs.toFixed(3)} | ${r.ratioAchieved.toFixed(2)} (${range(r.ratioMin, r.ratioMax, 2)}) | ` +
      `${r.unionFactor === null ? '-' : r.unionFactor.toFixed(2)}${r.tilingFactor === null ? '' : `, ${r.tilingFactor.toFixed(2)} (${r.tilings.join(' + ')})`} |`);
  }
  return lines.join('\n');
}
