/**
 * Plain-text tables of an Analysis for the terminal. Each table is rows of cells; `renderTable`
 * pads columns; the report reuses the same row builders for its HTML tables.
 */
import type { Analysis } from './analyze.js';
import { methodLabel } from './aggregate.js';
import { mean } from './stats.js';
import type { LargestPreserved } from './preservation.js';

export interface Table {
  title: string;
  header: string[];
  rows: string[][];
  /** Column indices to right-align (numbers). */
  numeric: number[];
}

export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '−∞';
  return x.toFixed(digits);
}

/** 1.23e12-style FLOPs. */
export function fmtFlops(x: number): string {
  if (!Number.isFinite(x)) return '—';
  if (x === 0) return '0';
  return x.toExponential(2);
}

export function accuracyTable(a: Analysis): Table {
  return {
    title: 'Accuracy per configuration (mean, Student-t 95% CI over scored examples; FLOPs are means per example)',
    header: ['model', 'task', 'n', 'method', 's req', 's achieved', 'mean', '95% CI', 'scored', 'dropped', 'FLOPs prefill', 'FLOPs decode', 'FLOPs total'],
    numeric: [2, 4, 5, 6, 8, 9, 10, 11, 12],
    rows: a.configurations.map((c) => [
      c.model, c.task, String(c.length), methodLabel(c) + (c.requestedSparsity === null ? ` ${JSON.stringify(c.params)}` : ''),
      fmt(c.requestedSparsity, 3), fmt(c.achieved, 3), fmt(c.summary.mean, 3),
      c.summary.ci ? `[${fmt(c.summary.ci[0], 3)}, ${fmt(c.summary.ci[1], 3)}]` : '—',
      String(c.summary.n), String(c.summary.dropped), fmtFlops(c.meanFlopsPrefill), fmtFlops(c.meanFlopsDecode), fmtFlops(c.meanFlopsTotal),
    ]),
  };
}

export function preservationTable(a: Analysis): Table {
  const o = a.preservation.options;
  const margin = o.marginKind === 'relative' ? `${(o.margin * 100).toFixed(1)}% of the dense mean` : `${o.margin} absolute`;
  return {
    title: `Largest sparsity preserving accuracy (paired one-sided t-test, H0: sparse − dense ≤ −δ, δ = ${margin}, α = ${o.alpha})`,
    header: ['model', 'task', 'n', 'method', 'largest preserved s', 's achieved there', 'compression k (achieved)', 'tested s', 'monotone'],
    numeric: [2, 4, 5, 6],
    rows: a.preservation.largest.map((l) => {
      const bought = preservedSparsityBought(l);
      return [
        l.model, l.task, String(l.length), `${l.method} (${l.phase})`, fmt(l.largestPreservedSparsity, 3),
        fmt(l.achievedAtLargest, 3), bought === null ? '—' : fmt(1 / (1 - bought), 1),
        l.tested.map((s) => fmt(s, 3)).join(' '), l.monotone ? 'yes' : 'no',
      ];
    }),
  };
}

/**
 * The sparsity a preservation verdict actually bought: the achieved one where it was measured (a
 * method that fell short of its target, like FlexPrefill at its budget floor, is credited with what
 * it reached, not what was asked), else the requested one; null when no tested sparsity passed.
 */
export function preservedSparsityBought(l: LargestPreserved): number | null {
  if (l.largestPreservedSparsity === null) return null;
  return l.achievedAtLargest ?? l.largestPreservedSparsity;
}

/**
 * The paper's second question in one table: per model and phase, how much sparsity the tests
 * certify on average over tasks, lengths and methods (a cell where no tested sparsity passed
 * counts as 0), and the share of cells where some sparsity passed.
 */
export function preservationByPhaseTable(a: Analysis): Table {
  const groups = new Map<string, { model: string; phase: string; values: number[]; passed: number }>();
  for (const l of a.preservation.largest) {
    const k = `${l.model}|${l.phase}`;
    const g = groups.get(k) ?? { model: l.model, phase: l.phase, values: [], passed: 0 };
    g.values.push(preservedSparsityBought(l) ?? 0);
    if (l.largestPreservedSparsity !== null) g.passed++;
    groups.set(k, g);
  }
  return {
    title: 'Preserved sparsity by model and phase (achieved sparsity at the largest preserved s; mean over tasks, lengths and methods; none passed = 0)',
    header: ['model', 'phase', 'cells', 'cells with a preserved s', 'mean largest preserved s (achieved)', 'max'],
    numeric: [2, 3, 4, 5],
    rows: [...groups.values()].map((g) => [
      g.model, g.phase, String(g.values.length), String(g.passed),
      fmt(mean(g.values), 3), fmt(Math.max(...g.values), 3),
    ]),
  };
}

export function preservationTestsTable(a: Analysis): Table {
  return {
    title: 'Paired tests of sparse against dense',
    header: ['model', 'task', 'n', 'method', 's', 's achieved', 'dense', 'sparse', 'mean diff', 'pairs', 't', 'p', 'preserved'],
    numeric: [2, 4, 5, 6, 7, 8, 9, 10, 11],
    rows: a.preservation.tests.map((t) => [
      t.model, t.task, String(t.length), `${t.method} (${t.phase})`, fmt(t.sparsity, 3), fmt(t.achievedSparsity, 3), fmt(t.denseMean, 3), fmt(t.sparseMean, 3),
      fmt(t.test.meanDifference, 3), String(t.test.n), fmt(t.test.t, 2), fmt(t.test.pValue, 4), t.preserved ? 'yes' : 'no',
    ]),
  };
}

export function frontierTable(a: Analysis): Table {
  const rows: string[][] = [];
  for (const g of a.isoflops) {
    for (const p of g.frontier) {
      rows.push([String(g.length), g.phase, p.model, p.phase === 'dense' ? 'dense' : p.method, fmt(p.sparsity, 3), fmt(p.accuracy, 3), fmtFlops(p.flops)]);
    }
  }
  return { title: 'IsoFLOPS Pareto frontier (accuracy averaged over tasks, total FLOPs per example)', header: ['n', 'phase', 'model', 'method', 's', 'accuracy', 'FLOPs'], numeric: [0, 4, 5, 6], rows };
}

export function denseVersusSparseTable(a: Analysis): Table {
  const rows: string[][] = [];
  for (const g of a.isoflops) {
    for (const c of g.comparisons) {
      const b = c.bestLargerSparse;
      rows.push([
        String(g.length), g.phase, c.dense.model, fmt(c.dense.accuracy, 3), fmtFlops(c.dense.flops),
        b ? `${b.model} ${b.method} s=${fmt(b.sparsity, 2)}` : '—', b ? fmt(b.accuracy, 3) : '—', b ? fmtFlops(b.flops) : '—', c.verdict,
      ]);
    }
  }
  return {
    title: 'At the compute of a smaller dense model, is a larger sparse model better?',
    header: ['n', 'phase', 'dense model', 'accuracy', 'FLOPs', 'best larger sparse (≤ FLOPs)', 'accuracy', 'FLOPs', 'verdict'],
    numeric: [0, 3, 4, 6, 7],
    rows,
  };
}

export function scalingLawTable(a: Analysis): Table {
  const effects = (f: Analysis['scalingLaws'][number]) =>
    Object.entries(f.taskEffects).filter(([t]) => t !== f.baselineTask).map(([t, v]) => `${t} ${fmt(v, 3)}`).join(', ');
  return {
    title: `Scaling law: score ≈ ${a.scalingLaws[0]?.link === 'identity' ? '' : 'σ'}(ε + δ_task + α·ln N + β·ln n + γ·ln k) (least squares; CV = leave-one-out up to 200 points, else 10-fold; held out = largest value of the axis: RMSE / R² / Spearman ρ)`,
    header: ['phase', 'method', 'points', 'ε', 'α (ln N)', 'β (ln n)', 'γ (ln k)', 'R²', 'RMSE', 'CV RMSE', 'held out: model size', 'held out: length', 'held out: compression', 'δ_task (vs first task)'],
    numeric: [2, 3, 4, 5, 6, 7, 8, 9],
    rows: a.scalingLaws.map((f) => {
      const held = (axis: string) => {
        if (f.skipped) return '—';
        const h = f.heldOut.find((x) => x.axis === axis);
        if (!h) return 'n/a (one value)';
        if (h.skipped) return 'n/a';
        return `${fmt(h.rmse, 4)} / ${fmt(h.r2, 2)} / ${fmt(h.spearman?.rho, 2)}`;
      };
      return [
        f.phase, f.method, String(f.rows),
        fmt(f.coefficients.intercept, 4), fmt(f.coefficients['ln N'], 4), fmt(f.coefficients['ln n'], 4), fmt(f.coefficients['ln k'], 4),
        fmt(f.r2, 3), fmt(f.rmse, 4), fmt(f.cvRmse, 4),
        held('model size'), held('length'), held('compression'),
        f.skipped ?? (effects(f) || '—'),
      ];
    }),
  };
}

export function buildFailuresTable(a: Analysis): Table {
  return {
    title: 'Examples the tasks could not build at their length (left out of every statistic)',
    header: ['model', 'task', 'n', 'example', 'reason'],
    numeric: [2, 3],
    rows: a.buildFailures.map((f) => [f.model, f.task, String(f.length), String(f.exampleIndex), f.error]),
  };
}

export function allTables(a: Analysis): Table[] {
  const tables = [accuracyTable(a), preservationTable(a), preservationByPhaseTable(a), frontierTable(a), denseVersusSparseTable(a), scalingLawTable(a)];
  if (a.buildFailures.length) tables.push(buildFailuresTable(a));
  return tables;
}

export function renderTable(t: Table): string {
  const widths = t.header.map((h, j) => Math.max(h.length, ...t.rows.map((r) => r[j].length)));
  const line = (cells: string[]) => cells.map((c, j) => (t.numeric.includes(j) ? c.padStart(widths[j]) : c.padEnd(widths[j]))).join('  ').trimEnd();
  const out = [t.title, line(t.header), widths.map((w) => '-'.repeat(w)).join('  ')];
  if (!t.rows.length) out.push('(none)');
  for (const r of t.rows) out.push(line(r));
  return out.join('\n');
}
