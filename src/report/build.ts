/**
 * Builds the report of an experiment directory: `<out>/report.html` plus every plot as
 * `<out>/plots/<id>.svg` and `.png`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Analysis } from '../analysis/analyze.js';
import { allTables, preservationTestsTable } from '../analysis/tables.js';
import { allCharts } from './charts.js';
import { type RenderedChart, reportHtml } from './html.js';
import { renderChartSvg, svgToPng } from './render.js';

export interface ReportOptions {
  /** Directory to write into (created). */
  outDir: string;
  title?: string;
  /** Also rasterise every plot to PNG (default true). */
  png?: boolean;
}

export interface ReportFiles {
  html: string;
  plots: { id: string; svg: string; png: string | null }[];
}

export async function buildReport(a: Analysis, options: ReportOptions): Promise<ReportFiles> {
  const plotsDir = join(options.outDir, 'plots');
  mkdirSync(plotsDir, { recursive: true });
  const rendered: RenderedChart[] = [];
  const plots: ReportFiles['plots'] = [];
  for (const chart of allCharts(a)) {
    const svg = await renderChartSvg(chart);
    const svgPath = join(plotsDir, `${chart.id}.svg`);
    writeFileSync(svgPath, svg);
    let pngPath: string | null = null;
    if (options.png !== false) {
      pngPath = join(plotsDir, `${chart.id}.png`);
      writeFileSync(pngPath, await svgToPng(svg));
    }
    rendered.push({ chart, svg, svgFile: `plots/${chart.id}.svg`, pngFile: pngPath ? `plots/${chart.id}.png` : null });
    plots.push({ id: chart.id, svg: svgPath, png: pngPath });
  }
  const tables = [...allTables(a), preservationTestsTable(a)];
  const html = join(options.outDir, 'report.html');
  writeFileSync(html, reportHtml(a, rendered, tables, options.title ?? 'Sparse attention trade-offs'));
  return { html, plots };
}
