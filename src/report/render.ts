/**
 * Server-side rendering of Vega-Lite charts: compile to Vega, run a headless View (renderer
 * 'none', no DOM) and serialise the scenegraph to SVG; PNG by rasterising that SVG with resvg.
 * The page then needs no script to show a plot.
 */
import type { Chart } from './charts.js';

// Vega, Vega-Lite and resvg load on first use: every command imports the report through `run`, and
// a runtime without the plotting packages (the GPU machine's slim bundle) still runs experiments
// with --no-report.
const plotting = async () => {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  return { vega, compile: vegaLite.compile };
};

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
  const { vega, compile } = await plotting();
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
export async function svgToPng(svg: string): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}
