/**
 * `sparse-frontier run EXPERIMENT | --preset NAME [--out DIR]`: runs a preset (quick, paper) or a
 * YAML/JSON experiment file into DIR/results.sqlite (default runs/<experiment name>), with a
 * progress bar (plain periodic lines when stdout is not a terminal). Resumable: finished examples
 * are skipped, and Ctrl-C stops after the example in flight (a second Ctrl-C quits at once; the
 * database loses at most that example). Shardable (`--shard i/n`; merge shard files with
 * `--merge`); `--jobs n|auto` spreads the examples over worker processes (auto for presets). With
 * `--report` (the default for presets) it then analyses the results and writes the HTML report,
 * and its last line says where: `report: DIR/report/report.html`.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { analyzeDirectory } from '../../analysis/analyze.js';
import { RUN_BACKENDS, parseRunBackend } from '../../experiments/backend.js';
import { PRESETS, loadExperiment } from '../../experiments/presets.js';
import { ResultsDb } from '../../experiments/results-db.js';
import { type RunSummary, type TaskLookup, runExperiment } from '../../experiments/runner.js';
import { expandExperiment, parseShard } from '../../experiments/spec.js';
import { buildReport } from '../../report/build.js';
import { getTask as registryTask } from '../../tasks/index.js';
import { type OutputSink, type ProgressDisplay, createProgressDisplay, formatDuration } from '../run-progress.js';

interface RunCliOptions {
  preset?: string;
  out?: string;
  shard?: string;
  modelsDir: string;
  dataDir?: string;
  dryRun?: boolean;
  merge: string[];
  report?: boolean;
  png: boolean;
  sharePrefill: boolean;
  progressInterval: string;
  jobs?: string;
  backend?: string;
  examples?: string;
}

export interface RunCommandDeps {
  /** Task registry (tests inject fixtures). */
  getTask?: TaskLookup;
  /** Where messages and progress go (default process.stdout). */
  out?: OutputSink;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The experiment named positionally or by --preset (one of the two, or both naming the same). */
export function chooseExperiment(positional: string | undefined, preset: string | undefined): { name: string; isPreset: boolean } {
  if (preset !== undefined && !(preset in PRESETS)) throw new Error(`--preset ${preset}: unknown preset (known: ${Object.keys(PRESETS).join(', ')})`);
  if (positional !== undefined && preset !== undefined && positional !== preset) {
    throw new Error(`give the experiment once: either "${positional}" or --preset ${preset}`);
  }
  const name = preset ?? positional;
  if (name === undefined) throw new Error(`name an experiment: a preset (${Object.keys(PRESETS).join(', ')}, or --preset NAME) or a YAML/JSON file`);
  return { name, isPreset: name in PRESETS };
}

/** The command that resumes this run (the same experiment, directory and shard). */
export function resumeCommand(name: string, dir: string, opts: Pick<RunCliOptions, 'shard' | 'modelsDir' | 'dataDir' | 'backend' | 'examples'>): string {
  const quote = (a: string) => (/^[\w./:=@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const args = ['run', name, '--out', dir];
  if (opts.shard) args.push('--shard', opts.shard);
  if (opts.modelsDir !== 'models') args.push('--models-dir', opts.modelsDir);
  if (opts.dataDir) args.push('--data-dir', opts.dataDir);
  if (opts.backend) args.push('--backend', opts.backend);
  if (opts.examples) args.push('--examples', opts.examples);
  return `npm start -- ${args.map(quote).join(' ')}`;
}

/** A flag's value that must be a positive integer; `accepted` says what the flag takes, for the error. */
function positiveIntegerFlag(flag: string, text: string, accepted = 'a positive integer'): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be ${accepted}, got "${text}"`);
  return n;
}

/** `--examples n`: a positive integer. */
export function parseExamples(text: string): number {
  return positiveIntegerFlag('--examples', text);
}

/** `--jobs n` or `auto` (one per core the OS offers this process). */
export function parseJobs(text: string): number {
  if (text === 'auto') return Math.max(1, availableParallelism());
  return positiveIntegerFlag('--jobs', text, 'a positive integer or auto');
}

function summaryLine(s: RunSummary, seconds: number): string {
  return `recorded ${s.recorded} example(s) in ${formatDuration(seconds)}, ${s.skippedDone} already done, ${s.failedExamples.length} could not be built`;
}

export function registerRun(program: Command, deps: RunCommandDeps = {}): void {
  const getTask = deps.getTask ?? registryTask;
  program
    .command('run')
    .description('Run an experiment (preset quick|paper, or a YAML/JSON file) into DIR/results.sqlite; resumes where it stopped')
    .argument('[experiment]', 'preset name (quick, paper) or experiment file')
    .option('--preset <name>', `a ready-made experiment (${Object.keys(PRESETS).join(', ')})`)
    .option('--out <dir>', 'experiment directory (results.sqlite, spec.json; default runs/<experiment name>)')
    .option('--shard <i/n>', 'run only shard i of n (disjoint shares of the (task, length, example) slots)')
    .option('--models-dir <dir>', 'where presets look for model directories', 'models')
    .option('--data-dir <dir>', 'QA data folder (default: the repository data)')
    .option('--dry-run', 'print the configurations and exit')
    .option('--merge <file>', 'fold another results.sqlite (a shard run elsewhere) into DIR and exit (repeatable)', collect, [])
    .option('--report', 'after the run, analyse the results and write DIR/report/report.html (default for presets)')
    .option('--no-report', 'do not write the report')
    .option('--no-png', 'report without PNG copies of the plots (faster)')
    .option('--no-share-prefill', 'prefill every configuration on its own (same results, slower; for timing comparisons)')
    .option('--jobs <n>', 'worker processes, each with its own model copy; auto = one per CPU core (default: auto for presets, 1 for files)')
    .option('--backend <name>', `${RUN_BACKENDS.join(', ')}: overrides the experiment's backend (cuda runs on the GPU and refuses methods without a GPU implementation; auto uses the GPU when it can and says why when it falls back to the CPU)`)
    .option('--examples <n>', "examples per configuration, overriding the experiment's (raise it later to add examples: the run resumes)")
    .option('--progress-interval <seconds>', 'seconds between progress lines when stdout is not a terminal', '15')
    .action(async (positional: string | undefined, opts: RunCliOptions) => {
      const out = deps.out ?? process.stdout;
      const { name, isPreset } = chooseExperiment(positional, opts.preset);
      const loaded = loadExperiment(name, opts.modelsDir);
      const spec = opts.examples === undefined ? loaded : { ...loaded, examples: parseExamples(opts.examples) };
      const dir = opts.out ?? join('runs', spec.name);
      if (opts.merge.length) {
        const db = ResultsDb.openDir(dir);
        try {
          for (const file of opts.merge) out.write(`merged ${db.mergeFrom(file)} example(s) from ${file}\n`);
        } finally {
          db.close();
        }
        return;
      }
      if (opts.dryRun) {
        const configs = expandExperiment(spec);
        for (const c of configs) out.write(`${c.key}\n`);
        out.write(`${configs.length} configurations × ${spec.examples} examples → ${dir}\n`);
        return;
      }
      const interval = Number(opts.progressInterval);
      if (!(interval > 0)) throw new Error(`--progress-interval must be a positive number of seconds, got ${opts.progressInterval}`);
      const shard = opts.shard ? parseShard(opts.shard) : undefined;
      const wantReport = opts.report ?? isPreset;
      const jobs = parseJobs(opts.jobs ?? (isPreset ? 'auto' : '1'));
      const backend = opts.backend === undefined ? undefined : parseRunBackend(opts.backend);

      const abort = new AbortController();
      let display: ProgressDisplay | null = null;
      const say = (line: string): unknown => (display ? display.log(line) : out.write(`${line}\n`));
      const onSigint = (): void => {
        if (abort.signal.aborted) {
          say('second Ctrl-C: quitting now (the example in flight is lost; the results database stays consistent)');
          process.exit(130);
        }
        abort.abort();
        say('Ctrl-C: stopping after the example in flight (Ctrl-C again to quit now)');
      };
      process.on('SIGINT', onSigint);
      out.write(`running ${spec.name} into ${dir}${jobs > 1 ? ` with up to ${jobs} worker processes` : ''}\n`);
      const bar = createProgressDisplay(out, { intervalSeconds: interval });
      display = bar;
      const t0 = performance.now();
      let summary: RunSummary;
      try {
        summary = await runExperiment({
          dir, spec, getTask, dataDir: opts.dataDir, shard, sharePrefill: opts.sharePrefill, signal: abort.signal, jobs, backend,
          log: (line) => say(line),
          onProgress: (p) => bar.update(p),
        });
      } finally {
        bar.stop();
        display = null;
        process.off('SIGINT', onSigint);
      }
      out.write(`${summaryLine(summary, (performance.now() - t0) / 1000)}\n`);
      for (const f of summary.failedExamples) out.write(`  ${f.model} ${f.task} n=${f.length} #${f.index}: ${f.error}\n`);
      if (summary.interrupted) {
        out.write(`interrupted: the results so far are in ${join(dir, 'results.sqlite')}; resume with the same command, e.g.\n  ${resumeCommand(name, dir, opts)}\n`);
        process.exitCode = 130;
        return;
      }
      if (wantReport) {
        const t1 = performance.now();
        const analysis = analyzeDirectory(dir);
        const reportDir = join(dir, 'report');
        const files = await buildReport(analysis, { outDir: reportDir, title: `sparse-frontier: ${spec.name}`, png: opts.png });
        out.write(`analysis and report in ${formatDuration((performance.now() - t1) / 1000)} (${files.plots.length} plots)\n`);
        out.write(`report: ${files.html}\n`);
      }
    });
}
