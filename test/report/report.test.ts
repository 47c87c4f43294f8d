/**
 * Builds a report from a planted results database, then opens it in headless Chromium with the
 * network cut off: the page must load, log no console error, request nothing but itself, and show
 * every plot as a rendered SVG. Skips (with a visible message) when Chromium is not installed;
 * .ci/run installs it. Set SF_REPORT_SCREENSHOT=path.png to keep a full-page screenshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { analyzeDirectory } from '../../src/analysis/analyze.js';
import { allCharts } from '../../src/report/charts.js';
import { buildReport } from '../../src/report/build.js';
import { buildSyntheticDb } from '../experiments/synthetic-db.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

async function makeReport() {
  const { dir, db } = buildSyntheticDb();
  db.close();
  const analysis = analyzeDirectory(dir);
  const files = await buildReport(analysis, { outDir: join(dir, 'report'), title: 'Synthetic report' });
  return { dir, analysis, files };
}

test('report files: one self-contained HTML, an SVG and a PNG per plot', async () => {
  const { dir, analysis, files } = await makeReport();
  const ids = allCharts(analysis).map((c) => c.id);
  // 2 summary charts (one per phase), 2 models × 2 lengths × 2 phases accuracy charts, 2 × 2
  // preservation heatmaps, 2 lengths × 2 phases isoFLOPS, 2 fits, 1 achieved.
  assert.equal(ids.length, 2 + 8 + 4 + 4 + 2 + 1);
  assert.equal(new Set(ids).size, ids.length);
  const html = readFileSync(files.html, 'utf8');
  assert.doesNotMatch(html, /<script/i, 'plots are static SVG');
  assert.doesNotMatch(html, /(src|href)="https?:/i, 'nothing is loaded from the network');
  for (const p of files.plots) {
    assert.match(readFileSync(p.svg, 'utf8'), /^<svg/);
    assert.deepEqual([...readFileSync(p.png!).subarray(1, 4)], [0x50, 0x4e, 0x47], `${p.id}.png is a PNG`);
    assert.match(html, new RegExp(`data-plot="${p.id}"`));
  }
  rmSync(dir, { recursive: true, force: true });
});

test('report loads offline in headless Chromium with every plot rendered', { skip: existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM}: browser check skipped (CI installs it in .ci/run)` }, async () => {
  const { dir, analysis, files } = await makeReport();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
  try {
    const context = await browser.newContext({ offline: true, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('request', (r) => requests.push(r.url()));
    const url = pathToFileURL(files.html).href;
    const response = await page.goto(url, { waitUntil: 'load' });
    assert.ok(response?.ok(), 'the page loads');
    assert.deepEqual(errors, [], 'no console errors');
    assert.deepEqual(requests, [url], 'the page requests nothing but itself');
    for (const chart of allCharts(analysis)) {
      const fig = page.locator(`figure[data-plot="${chart.id}"]`);
      assert.equal(await fig.count(), 1, `figure ${chart.id}`);
      const box = await fig.locator('svg').first().boundingBox();
      assert.ok(box && box.width > 100 && box.height > 100, `${chart.id} is drawn at a visible size`);
      const marks = await fig.locator('svg path, svg line, svg circle, svg rect').count();
      assert.ok(marks > 10, `${chart.id} has marks (${marks})`);
    }
    assert.ok((await page.locator('table').count()) >= 6, 'tables are present');
    if (process.env.SF_REPORT_SCREENSHOT) await page.screenshot({ path: process.env.SF_REPORT_SCREENSHOT, fullPage: true });
    await context.close();
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
