/**
 * The report's plots as Vega-Lite specifications built from an Analysis (data inlined, so each spec
 * renders on its own): accuracy against sparsity per task and phase, the largest preserved sparsity
 * per task and method, the isoFLOPS view with its frontier, the scaling-law fit against the observed
 * accuracy, and achieved against requested sparsity.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Analysis } from '../analysis/analyze.js';
import { mean, sampleVariance } from '../analysis/stats.js';
import { achievedOrRequested } from '../analysis/aggregate.js';

export interface Chart {
  /** File-name-safe identifier, unique within a report. */
  id: string;
  title: string;
  caption: string;
  spec: TopLevelSpec;
}

const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';

const baseConfig = {
  font: FONT,
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  header: { labelFontSize: 12, titleFontSize: 12 },
  title: { fontSize: 14, anchor: 'start' as const },
};

export function slug(...parts: (string | number)[]): string {
  return parts
    .map((p) => String(p).toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/^-+|-+$/g, ''))
    .filter(Boolean)
    .join('_');
}

/**
 * A panel per task (three a row): `scoreField` against sparsity, a line per method, and its interval
 * [lo, hi] drawn with `interval` (bars or a band). rows: { task, method, sparsity, lo, hi, [scoreField] }.
 */
function scoreBySparsityPerTask(rows: object[], scoreField: string, interval: { type: 'rule' | 'area'; opacity: number }) {
  const x = { field: 'sparsity', type: 'quantitative' as const, title: 'sparsity s (0 = dense)', scale: { domain: [0, 1] } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: baseConfig,
    data: { values: rows },
    facet: { field: 'task', type: 'nominal', title: null, columns: 3 } as never,
    spec: {
      width: 210,
      height: 150,
      layer: [
        {
          mark: { type: 'line', point: true },
          encoding: {
            x,
            y: { field: scoreField, type: 'quantitative', title: 'score', scale: { domain: [0, 1] } },
            color: { field: 'method', type: 'nominal', title: 'method' },
            order: { field: 'sparsity', type: 'quantitative' },
          },
        },
        // The interval comes after the line so the legend takes the line's symbol.
        { mark: interval, encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color: { field: 'method', type: 'nominal' } } },
      ],
    },
  };
}

/** One chart per (model, length, phase): a panel per task, a line per method, 95% intervals as bars. */
export function accuracyVersusSparsityCharts(a: Analysis): Chart[] {
  const charts: Chart[] = [];
  const models = [...new Set(a.configurations.map((c) => c.model))];
  const lengths = [...new Set(a.configurations.map((c) => c.length))].sort((x, y) => x - y);
  for (const model of models) {
    for (const length of lengths) {
      for (const phase of ['prefill', 'decode'] as const) {
        // Configurations without a scored example have no mean to plot.
        const sparse = a.configurations.filter((c) => c.model === model && c.length === length && c.phase === phase && c.summary.n > 0);
        if (!sparse.length) continue;
        const methods = [...new Set(sparse.map((c) => c.method))];
        const dense = a.configurations.filter((c) => c.model === model && c.length === length && c.phase === 'dense' && c.summary.n > 0);
        const rows = [
          // Dense is every method's s = 0 point, so each line starts at the baseline.
          ...dense.flatMap((d) => methods.map((m) => ({ task: d.task, method: m, sparsity: 0, accuracy: d.summary.mean, lo: d.summary.ci?.[0] ?? d.summary.mean, hi: d.summary.ci?.[1] ?? d.summary.mean, n: d.summary.n }))),
          ...sparse.map((c) => ({ task: c.task, method: c.method, sparsity: achievedOrRequested(c), accuracy: c.summary.mean, lo: c.summary.ci?.[0] ?? c.summary.mean, hi: c.summary.ci?.[1] ?? c.summary.mean, n: c.summary.n })),
        ].map((r) => ({ ...r, lo: Math.max(0, r.lo), hi: Math.min(1, r.hi) }));
        charts.push({
          id: slug('accuracy', model, length, phase),
          title: `Accuracy vs sparsity — ${model}, n = ${length}, ${phase} methods`,
          caption: `Mean score per configuration with its Student-t 95% interval (clipped to [0, 1]); s = 0 is dense. Each configuration sits at the sparsity it achieved (mean over examples), which is below the target where a method cannot reach it.`,
          spec: {
            ...scoreBySparsityPerTask(rows, 'accuracy', { type: 'rule', opacity: 0.5 }),
            resolve: { scale: { x: 'shared', y: 'shared' } },
          } as TopLevelSpec,
        });
      }
    }
  }
  return charts;
}

/**
 * The paper's Figure 4 view: per phase, one panel per task, score against sparsity per method,
 * averaged over models and lengths (the band is ± one standard error across those cells; dense is
 * every method's s = 0 point).
 */
export function accuracySummaryCharts(a: Analysis): Chart[] {
  const charts: Chart[] = [];
  for (const phase of ['prefill', 'decode'] as const) {
    const sparse = a.configurations.filter((c) => c.phase === phase && c.summary.n > 0);
    if (!sparse.length) continue;
    const methods = [...new Set(sparse.map((c) => c.method))];
    const dense = a.configurations.filter((c) => c.phase === 'dense' && c.summary.n > 0);
    const groups = new Map<string, { task: string; method: string; sparsity: number; values: number[] }>();
    const add = (task: string, method: string, sparsity: number, value: number) => {
      const k = `${task}|${method}|${sparsity}`;
      const g = groups.get(k) ?? { task, method, sparsity, values: [] };
      g.values.push(value);
      groups.set(k, g);
    };
    for (const d of dense) for (const m of methods) add(d.task, m, 0, d.summary.mean);
    for (const c of sparse) add(c.task, c.method, Math.round(c.sparsity * 1e4) / 1e4, c.summary.mean);
    const rows = [...groups.values()].map((g) => {
      const m = mean(g.values);
      const se = Math.sqrt(sampleVariance(g.values)) / Math.sqrt(g.values.length);
      return { task: g.task, method: g.method, sparsity: g.sparsity, score: m, lo: Math.max(0, m - se), hi: Math.min(1, m + se), cells: g.values.length };
    });
    charts.push({
      id: slug('summary', phase),
      title: `Score vs sparsity per task, averaged over models and lengths — ${phase} methods`,
      caption: 'Mean over (model, length) cells of the configuration means; the band is ± one standard error across those cells. Sparsity is the requested one (achieved for swept methods), rounded to 4 decimals, so cells group across lengths; a method that falls short of its target (FlexPrefill at its budget floor) shows at the target here, and where it landed in the per-length charts.',
      spec: scoreBySparsityPerTask(rows, 'score', { type: 'area', opacity: 0.2 }) as TopLevelSpec,
    });
  }
  return charts;
}

/**
 * One heatmap per (model, length): the largest sparsity whose paired test passed, per task and
 * method (grey: no tested sparsity passed).
 */
export function preservationCharts(a: Analysis): Chart[] {
  const charts: Chart[] = [];
  const keys = [...new Set(a.preservation.largest.map((l) => `${l.model}|${l.length}`))];
  for (const key of keys) {
    const rows = a.preservation.largest
      .filter((l) => `${l.model}|${l.length}` === key)
      .map((l) => ({
        task: l.task, method: `${l.method} (${l.phase})`, s: l.largestPreservedSparsity,
        label: l.largestPreservedSparsity === null ? 'none' : l.largestPreservedSparsity.toFixed(2),
      }));
    const { model, length } = a.preservation.largest.find((l) => `${l.model}|${l.length}` === key)!;
    const o = a.preservation.options;
    charts.push({
      id: slug('preservation', model, length),
      title: `Largest sparsity preserving accuracy — ${model}, n = ${length}`,
      caption: `Per task and method, the largest tested s whose paired one-sided t-test rejects a drop of δ = ${o.marginKind === 'relative' ? `${o.margin} × dense mean` : o.margin} at α = ${o.alpha}; "none": no tested sparsity passed.`,
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        config: baseConfig,
        data: { values: rows },
        width: { step: 70 },
        height: { step: 24 },
        layer: [
          // Grey under every cell, so "none" (s is null, which the coloured layer skips) still shows.
          {
            mark: { type: 'rect', fill: '#eeeeee', stroke: 'white' },
            encoding: {
              x: { field: 'task', type: 'nominal', title: null, axis: { labelAngle: -30 } },
              y: { field: 'method', type: 'nominal', title: null, axis: { labelLimit: 300 } },
            },
          },
          {
            mark: { type: 'rect', stroke: 'white' },
            encoding: {
              x: { field: 'task', type: 'nominal' },
              y: { field: 'method', type: 'nominal' },
              color: { field: 's', type: 'quantitative', title: 'preserved s', scale: { domain: [0, 1], scheme: 'blues' } },
            },
          },
          { mark: { type: 'text', fontSize: 11 }, encoding: { x: { field: 'task', type: 'nominal' }, y: { field: 'method', type: 'nominal' }, text: { field: 'label' } } },
        ],
      } as TopLevelSpec,
    });
  }
  return charts;
}

/** One chart per (length, phase): FLOPs (log) against accuracy, the frontier as a line. */
export function isoFlopsCharts(a: Analysis): Chart[] {
  return a.isoflops.map((g) => {
    const onFrontier = new Set(g.frontier);
    const rows = g.points.map((p) => ({
      model: p.model, method: p.phase === 'dense' ? 'dense' : p.method, sparsity: p.sparsity, accuracy: p.accuracy, flops: p.flops,
      frontier: onFrontier.has(p) ? 'on frontier' : 'dominated',
    }));
    const frontier = g.frontier.map((p) => ({ accuracy: p.accuracy, flops: p.flops }));
    const x = { field: 'flops', type: 'quantitative' as const, title: 'total FLOPs per example (log scale; G = 1e9, T = 1e12)', scale: { type: 'log' as const }, axis: { format: '~s' } };
    return {
      id: slug('isoflops', g.length, g.phase),
      title: `IsoFLOPS — n = ${g.length}, dense and ${g.phase} methods`,
      caption: 'Each point is one (model, method, sparsity), accuracy and FLOPs averaged over tasks. The line joins the Pareto frontier: no other point has fewer or equal FLOPs and higher accuracy.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        config: baseConfig,
        width: 520,
        height: 300,
        layer: [
          { data: { values: frontier }, mark: { type: 'line', color: '#555', strokeDash: [4, 3] }, encoding: { x, y: { field: 'accuracy', type: 'quantitative' }, order: { field: 'flops', type: 'quantitative' } } },
          {
            data: { values: rows },
            mark: { type: 'point', filled: true, size: 70, opacity: 0.85 },
            encoding: {
              x,
              y: { field: 'accuracy', type: 'quantitative', title: 'mean score over tasks', scale: { zero: false } },
              color: { field: 'model', type: 'nominal', title: 'model' },
              shape: { field: 'method', type: 'nominal', title: 'method' },
            },
          },
        ],
      } as TopLevelSpec,
    };
  });
}

/** Observed against predicted accuracy of every scaling-law fit (per method), one panel per phase. */
export function scalingLawCharts(a: Analysis): Chart[] {
  const charts: Chart[] = [];
  for (const phase of ['prefill', 'decode'] as const) {
    const fits = a.scalingLaws.filter((f) => f.phase === phase && f.method !== 'all' && !f.skipped);
    if (!fits.length) continue;
    const rows = fits.flatMap((f) =>
      f.points.filter((p) => p.predicted !== null).map((p) => ({ method: f.method, observed: p.accuracy, predicted: p.predicted, model: p.model, length: p.length, sparsity: p.sparsity })),
    );
    const values = rows.flatMap((r) => [r.observed, r.predicted as number]);
    const lo = Math.min(...values), hi = Math.max(...values);
    charts.push({
      id: slug('scaling-law', phase),
      title: `Scaling-law fit vs observed — ${phase} methods`,
      caption: 'score ≈ σ(ε + δ_task + α·ln N + β·ln n + γ·ln k) (or without σ under --scaling-link identity), fitted per method (dense rows at k = 1 included); one point per configuration; points on the diagonal are predicted exactly. Coefficients and held-out errors are in the tables.',
      spec: {
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        config: baseConfig,
        width: 360,
        height: 300,
        layer: [
          { data: { values: [{ v: lo }, { v: hi }] }, mark: { type: 'line', color: '#999', strokeDash: [4, 3] }, encoding: { x: { field: 'v', type: 'quantitative' }, y: { field: 'v', type: 'quantitative' } } },
          {
            data: { values: rows },
            mark: { type: 'point', filled: true, size: 55, opacity: 0.8 },
            encoding: {
              x: { field: 'observed', type: 'quantitative', title: 'observed mean score', scale: { zero: false } },
              y: { field: 'predicted', type: 'quantitative', title: 'predicted by the fit', scale: { zero: false } },
              color: { field: 'method', type: 'nominal', title: 'method' },
            },
          },
        ],
      } as TopLevelSpec,
    });
  }
  return charts;
}

/** Achieved (measured from attended pairs) against requested sparsity, per phase. */
export function achievedSparsityChart(a: Analysis): Chart[] {
  const rows = a.configurations
    .filter((c) => c.phase !== 'dense' && c.requestedSparsity !== null && c.achieved !== null)
    .map((c) => ({ phase: c.phase, method: c.method, requested: c.requestedSparsity, achieved: c.achieved, length: c.length, task: c.task }));
  if (!rows.length) return [];
  return [{
    id: 'achieved-sparsity',
    title: 'Achieved vs requested sparsity',
    caption: 'Achieved sparsity = 1 − attended/dense (query, key) pairs over all layers and heads (decode: KV entries read), averaged over examples; one point per configuration. The dashed diagonal is achieved = requested.',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      config: baseConfig,
      data: { values: rows },
      facet: { field: 'phase', type: 'nominal', title: null } as never,
      spec: {
        width: 260,
        height: 220,
        layer: [
          { data: { values: [{ v: 0 }, { v: 1 }] }, mark: { type: 'line', color: '#999', strokeDash: [4, 3] }, encoding: { x: { field: 'v', type: 'quantitative' }, y: { field: 'v', type: 'quantitative' } } },
          {
            mark: { type: 'point', filled: true, size: 50, opacity: 0.7 },
            encoding: {
              x: { field: 'requested', type: 'quantitative', title: 'requested s', scale: { domain: [0, 1] } },
              y: { field: 'achieved', type: 'quantitative', title: 'achieved s', scale: { domain: [0, 1] } },
              color: { field: 'method', type: 'nominal', title: 'method' },
            },
          },
        ],
      },
    } as TopLevelSpec,
  }];
}

export function allCharts(a: Analysis): Chart[] {
  return [...accuracySummaryCharts(a), ...accuracyVersusSparsityCharts(a), ...preservationCharts(a), ...isoFlopsCharts(a), ...scalingLawCharts(a), ...achievedSparsityChart(a)];
}
