/**
 * `sparse-frontier run EXPERIMENT --out DIR`: runs a preset (quick, paper) or a YAML/JSON experiment
 * file into DIR/results.sqlite. Resumable (finished examples are skipped) and shardable
 * (`--shard i/n` runs a disjoint share; merge shard files with `--merge`).
 */
import type { Command } from 'commander';
import { loadExperiment } from '../../experiments/presets.js';
import { ResultsDb } from '../../experiments/results-db.js';
import { runExperiment } from '../../experiments/runner.js';
import { expandExperiment, parseShard } from '../../experiments/spec.js';
import { getTask } from '../../tasks/index.js';

interface RunCliOptions {
  out: string;
  shard?: string;
  modelsDir: string;
  dataDir?: string;
  dryRun?: boolean;
  merge: string[];
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('Run an experiment (preset quick|paper, or a YAML/JSON file) into DIR/results.sqlite; resumes where it stopped')
    .argument('<experiment>', 'preset name (quick, paper) or experiment file')
    .requiredOption('--out <dir>', 'experiment directory (results.sqlite, spec.json)')
    .option('--shard <i/n>', 'run only shard i of n (disjoint shares of every configuration)')
    .option('--models-dir <dir>', 'where presets look for model directories', 'models')
    .option('--data-dir <dir>', 'QA data folder (default: the repository data)')
    .option('--dry-run', 'print the configurations and exit')
    .option('--merge <file>', 'fold another results.sqlite (a shard run elsewhere) into DIR and exit (repeatable)', collect, [])
    .action(async (experiment: string, opts: RunCliOptions) => {
      const out = process.stdout;
      if (opts.merge.length) {
        const db = ResultsDb.openDir(opts.out);
        try {
          for (const file of opts.merge) out.write(`merged ${db.mergeFrom(file)} example(s) from ${file}\n`);
        } finally {
          db.close();
        }
        return;
      }
      const spec = loadExperiment(experiment, opts.modelsDir);
      if (opts.dryRun) {
        const configs = expandExperiment(spec);
        for (const c of configs) out.write(`${c.key}\n`);
        out.write(`${configs.length} configurations × ${spec.examples} examples\n`);
        return;
      }
      const summary = await runExperiment({
        dir: opts.out, spec, getTask, dataDir: opts.dataDir,
        shard: opts.shard ? parseShard(opts.shard) : undefined,
        log: (line) => out.write(`${line}\n`),
      });
      out.write(`recorded ${summary.recorded} example(s), ${summary.skippedDone} already done, ${summary.failedExamples.length} could not be built\n`);
      for (const f of summary.failedExamples) out.write(`  ${f.model} ${f.task} n=${f.length} #${f.index}: ${f.error}\n`);
    });
}
