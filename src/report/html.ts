/**
 * The report page: one self-contained HTML file (inline CSS, plots as inline SVG, no script, no
 * external resource; a Content-Security-Policy forbids any load besides links the reader follows).
 */
import type { Analysis } from '../analysis/analyze.js';
import { type Table, fmtFlops } from '../analysis/tables.js';
import type { Chart } from './charts.js';

export interface RenderedChart {
  chart: Chart;
  svg: string;
  /** Paths of the exported files, relative to the HTML file (null when not written). */
  svgFile: string | null;
  pngFile: string | null;
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function tableHtml(t: Table, id: string): string {
  const head = t.header.map((h, j) => `<th${t.numeric.includes(j) ? ' class="num"' : ''}>${escapeHtml(h)}</th>`).join('');
  const body = t.rows.length
    ? t.rows.map((r) => `<tr>${r.map((c, j) => `<td${t.numeric.includes(j) ? ' class="num"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n')
    : `<tr><td colspan="${t.header.length}">(none)</td></tr>`;
  return `<div class="table" id="${id}"><h3>${escapeHtml(t.title)}</h3><div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div></div>`;
}

function figureHtml(r: RenderedChart): string {
  const links = [r.svgFile && `<a href="${escapeHtml(r.svgFile)}">SVG</a>`, r.pngFile && `<a href="${escapeHtml(r.pngFile)}">PNG</a>`].filter(Boolean).join(' · ');
  return `<figure class="plot" id="plot-${r.chart.id}" data-plot="${r.chart.id}">
<h3>${escapeHtml(r.chart.title)}</h3>
${r.svg}
<figcaption>${escapeHtml(r.chart.caption)}${links ? ` <span class="links">${links}</span>` : ''}</figcaption>
</figure>`;
}

const CSS = `
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1.5rem 2rem 4rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.meta { color: #666; font-size: .9rem; }
nav ul { columns: 2; font-size: .9rem; }
figure.plot { margin: 1rem 0 2rem; }
figure.plot svg { max-width: 100%; height: auto; }
figcaption { font-size: .85rem; color: #555; max-width: 60rem; }
.links { white-space: nowrap; }
.scroll { overflow-x: auto; max-height: 32rem; overflow-y: auto; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: .8rem; }
th, td { padding: .2rem .5rem; border-bottom: 1px solid #eee; text-align: left; white-space: nowrap; }
th { background: #f6f6f6; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
dl dt { font-weight: bold; margin-top: .6rem; }
dl dd { margin-left: 1rem; }
`;

export function reportHtml(a: Analysis, charts: RenderedChart[], tables: Table[], title: string): string {
  const sections: { id: string; heading: string; prefix: string }[] = [
    { id: 'summary', heading: 'Score against sparsity per task (all models and lengths)', prefix: 'summary' },
    { id: 'accuracy', heading: 'Accuracy against sparsity per model and length', prefix: 'accuracy' },
    { id: 'preservation', heading: 'Largest sparsity preserving accuracy', prefix: 'preservation' },
    { id: 'isoflops', heading: 'IsoFLOPS and the Pareto frontier', prefix: 'isoflops' },
    { id: 'scaling-law', heading: 'Scaling law', prefix: 'scaling-law' },
    { id: 'achieved', heading: 'Achieved sparsity', prefix: 'achieved' },
  ];
  const o = a.preservation.options;
  const models = a.models.map((m) => `<tr><td>${escapeHtml(m.name)}</td><td>${escapeHtml(m.path)}</td><td class="num">${fmtFlops(m.nonEmbeddingParams)}</td><td class="num">${fmtFlops(m.storedParams)}</td></tr>`).join('');
  const examples = a.configurations.reduce((s, c) => s + c.summary.n + c.summary.dropped, 0);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
<p class="meta">Source: ${escapeHtml(a.source)} · ${a.configurations.length} configurations · ${examples} examples · generated ${escapeHtml(new Date().toISOString())}</p>
</header>
<nav><ul>
${sections.map((s) => `<li><a href="#${s.id}">${escapeHtml(s.heading)}</a></li>`).join('\n')}
<li><a href="#tables">Tables</a></li>
<li><a href="#definitions">Definitions</a></li>
</ul></nav>
<section id="models"><h2>Models</h2>
<div class="scroll"><table><thead><tr><th>model</th><th>directory</th><th class="num">non-embedding params (incl. LM head)</th><th class="num">stored params</th></tr></thead><tbody>${models}</tbody></table></div>
</section>
${sections
  .map((s) => {
    const figs = charts.filter((c) => c.chart.id.startsWith(s.prefix));
    return `<section id="${s.id}"><h2>${escapeHtml(s.heading)}</h2>\n${figs.length ? figs.map(figureHtml).join('\n') : '<p>No data for this view.</p>'}\n</section>`;
  })
  .join('\n')}
<section id="tables"><h2>Tables</h2>
${tables.map((t, i) => tableHtml(t, `table-${i}`)).join('\n')}
</section>
<section id="definitions"><h2>Definitions</h2>
<dl>
<dt>Score</dt><dd>The task's own per-example metric (accuracy, IoU or F1); dropped examples are left out of means and tests and counted separately.</dd>
<dt>95% interval</dt><dd>mean ± t<sub>0.975, n−1</sub>·sd/√n over the scored examples (Student t; sd with ddof 1).</dd>
<dt>Achieved sparsity</dt><dd>1 − (attended pairs)/(dense causal pairs), summed over layers and query heads; decode counts KV entries read per generated token.</dd>
<dt>Preservation test</dt><dd>Paired one-sided t-test over examples scored under both sparse and dense: H0 μ<sub>sparse</sub> − μ<sub>dense</sub> ≤ −δ, δ = ${o.marginKind === 'relative' ? `${o.margin} × dense mean` : `${o.margin}`}; preserved when p &lt; α = ${o.alpha}. The largest preserved s is the largest tested sparsity that passes; the summaries credit it with the sparsity that configuration achieved, which is lower where a method cannot reach its target (e.g. FlexPrefill at its budget floor).</dd>
<dt>FLOPs</dt><dd>Linear: 2 × matmul parameters (q/k/v/o, MLP, LM head) per token through them; attention: 4·d per attended (query, key) pair and query head; plus the method's importance-estimation FLOPs. Prefill and decode summed per example.</dd>
<dt>Scaling law</dt><dd>score ≈ σ(ε + δ<sub>task</sub> + α·ln N + β·ln n + γ·ln k) (logit link; <code>--scaling-link identity</code> drops σ), N non-embedding parameters, n context length, k = 1/(1 − s), δ<sub>task</sub> = 0 for the first task; least squares on the score scale over configuration means; held-out RMSE, R² and Spearman ρ on the largest model, length and compression in turn.</dd>
</dl>
</section>
</body>
</html>
`;
}
