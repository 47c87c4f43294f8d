/**
 * Server-side rendering of Vega-Lite charts: compile to Vega, run a headless View (renderer
 * 'none', no DOM) and serialise the scenegraph to SVG; PNG by rasterising that SVG with resvg.
 * The page then needs no script to show a plot.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile } from 'vega-lite';
import type { Chart } from './charts.js';

/**
 * Makes every id in an SVG unique to the chart (clip paths, gradients), since all inline SVGs of
 * one HTML page share one id namespace.
 */
export function namespaceSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_m, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_m, id: string) => `url(#${prefix}-${id})`)
    .replace(/href="#([^"]+)"/g, (_m, id: string) => `href="#${prefix}-${id}"`);
}

export async function renderChartSvg(chart: Chart): Promise<string> {
  const { spec } = compile(chart.spec);
  // The default loader would fetch URLs; every chart inlines its data, so forbid loading outright.
  const loader = vega.loader({ mode: 'http' });
  loader.load = async (uri: string) => {
    throw new Error(`chart ${chart.id} tried to load ${uri}; report charts must inline their data`);
  };
  const view = new vega.View(vega.parse(spec), { renderer: 'none', loader });
  try {
    const svg = await view.toSVG();
    return namespaceSvgIds(svg, chart.id);
  } finally {
    view.finalize();
  }
}

/** PNG at twice the SVG's size (crisp on high-density screens). */
export function svgToPng(svg: string): Buffer {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}
