/**
 * `sparse-frontier analyze DIR`: reads DIR/results.sqlite, prints the accuracy, preservation,
 * isoFLOPS and scaling-law tables, and writes DIR/analysis.json.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { analysisToJson, analyzeDirectory } from '../../analysis/analyze.js';
import type { PreservationOptions } from '../../analysis/preservation.js';
import type { ScalingLink } from '../../analysis/scaling-law.js';
import { allTables, preservationTestsTable, renderTable } from '../../analysis/tables.js';

export interface PreservationFlags {
  alpha: string;
  margin: string;
  marginKind: string;
  scalingLink: string;
}

export function preservationOptions(flags: PreservationFlags): PreservationOptions {
  const alpha = Number(flags.alpha);
  const margin = Number(flags.margin);
  if (!(alpha > 0 && alpha < 1)) throw new Error(`--alpha must be in (0, 1), got ${flags.alpha}`);
  if (!(margin >= 0)) throw new Error(`--margin must be a number >= 0, got ${flags.margin}`);
  if (flags.marginKind !== 'relative' && flags.marginKind !== 'absolute') throw new Error(`--margin-kind must be relative or absolute, got ${flags.marginKind}`);
  return { alpha, margin, marginKind: flags.marginKind };
}

export function scalingLink(flags: PreservationFlags): ScalingLink {
  if (flags.scalingLink !== 'logit' && flags.scalingLink !== 'identity') throw new Error(`--scaling-link must be logit or identity, got ${flags.scalingLink}`);
  return flags.scalingLink;
}

/** The analysis flags analyze and report share. */
export function addPreservationFlags(cmd: Command): Command {
  return cmd
    .option('--alpha <p>', 'significance level of the one-sided paired t-test', '0.05')
    .option('--margin <delta>', 'non-inferiority margin δ (see --margin-kind)', '0.05')
    .option('--margin-kind <kind>', 'relative: δ = margin × dense mean; absolute: δ in score units', 'relative')
    .option('--scaling-link <link>', 'scaling law: logit (score = σ(linear), the paper\'s scale) or identity', 'logit');
}

export function registerAnalyze(program: Command): void {
  addPreservationFlags(
    program
      .command('analyze')
      .description('Analyse an experiment directory: accuracy with 95% CIs, paired tests vs dense, isoFLOPS frontier, scaling law; writes analysis.json')
      .argument('<dir>', 'experiment directory holding results.sqlite'),
  )
    .option('--tests', 'also print every paired test')
    .option('--out <file>', 'where to write the JSON (default DIR/analysis.json)')
    .action((dir: string, opts: PreservationFlags & { tests?: boolean; out?: string }) => {
      const analysis = analyzeDirectory(dir, preservationOptions(opts), scalingLink(opts));
      const tables = allTables(analysis);
      if (opts.tests) tables.push(preservationTestsTable(analysis));
      process.stdout.write(`${tables.map(renderTable).join('\n\n')}\n`);
      const out = opts.out ?? join(dir, 'analysis.json');
      writeFileSync(out, `${JSON.stringify(analysisToJson(analysis), null, 2)}\n`);
      process.stdout.write(`\nwrote ${out}\n`);
    });
}
