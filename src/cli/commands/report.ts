/**
 * `sparse-frontier report DIR`: one self-contained HTML page (DIR/report/report.html) with the
 * plots inline as SVG, plus each plot as SVG and PNG under DIR/report/plots/.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { analyzeDirectory } from '../../analysis/analyze.js';
import { buildReport } from '../../report/build.js';
import { type PreservationFlags, addPreservationFlags, preservationOptions, scalingLink } from './analyze.js';

export function registerReport(program: Command): void {
  addPreservationFlags(
    program
      .command('report')
      .description('Write an offline HTML report (plots as inline SVG, tables) plus SVG/PNG exports of every plot')
      .argument('<dir>', 'experiment directory holding results.sqlite'),
  )
    .option('--out <dir>', 'output directory (default DIR/report)')
    .option('--title <text>', 'page title')
    .option('--no-png', 'skip the PNG exports')
    .action(async (dir: string, opts: PreservationFlags & { out?: string; title?: string; png: boolean }) => {
      const analysis = analyzeDirectory(dir, preservationOptions(opts), scalingLink(opts));
      const files = await buildReport(analysis, { outDir: opts.out ?? join(dir, 'report'), title: opts.title, png: opts.png });
      process.stdout.write(`wrote ${files.html} and ${files.plots.length} plots under ${join(opts.out ?? join(dir, 'report'), 'plots')}\n`);
    });
}
