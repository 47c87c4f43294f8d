import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { chooseExperiment, parseExamples, parseJobs, registerRun, resumeCommand } from '../../src/cli/commands/run.js';
import { formatDuration, progressLine, shortConfigLabel } from '../../src/cli/run-progress.js';
import { ResultsDb } from '../../src/experiments/results-db.js';
import { listMethods } from '../../src/methods/index.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { echoGetTask } from './echo-task.js';
import { buildSyntheticDb } from './synthetic-db.js';

async function runCli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  let out = '';
  registerRun(program, { getTask: echoGetTask, out: { write: (text: string) => { out += text; } } });
  await program.parseAsync(['node', 'sparse-frontier', ...args]);
  return out;
}

test('run --dry-run lists the quick grid (positional or --preset, default --out); --merge folds a shard file in', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sf-runcli-'));
  const listing = await runCli(['run', 'quick', '--out', join(root, 'q'), '--dry-run', '--models-dir', join(root, 'none')]);
  const perCell = 1 + 2 * listMethods().filter((m) => m.id !== 'dense').length;
  assert.match(listing, new RegExp(`${2 * perCell} configurations × 3 examples`));
  assert.match(listing, /model=organism\|task=niah\[numQueries=1\]\|n=1792\|phase=dense\|method=dense\|s=0/);
  const byPreset = await runCli(['run', '--preset', 'quick', '--dry-run', '--models-dir', join(root, 'none')]);
  assert.match(byPreset, /configurations × 3 examples → runs\/quick\n$/);
  const { dir, db } = buildSyntheticDb(join(root, 'shard'));
  const total = db.examples().length;
  db.close();
  const merged = await runCli(['run', 'quick', '--out', join(root, 'merged'), '--merge', join(dir, 'results.sqlite')]);
  assert.match(merged, new RegExp(`merged ${total} example\\(s\\)`));
  await assert.rejects(runCli(['run', 'nothing-like-this', '--out', join(root, 'x')]), /neither a preset \(quick, paper, organism\) nor a file/);
  await assert.rejects(runCli(['run', 'quick', '--out', join(root, 'x'), '--shard', '3/2']), /1 <= i <= n/);
});

test('the experiment is named once: positionally or by --preset', () => {
  assert.deepEqual(chooseExperiment('quick', undefined), { name: 'quick', isPreset: true });
  assert.deepEqual(chooseExperiment(undefined, 'paper'), { name: 'paper', isPreset: true });
  assert.deepEqual(chooseExperiment('quick', 'quick'), { name: 'quick', isPreset: true });
  assert.deepEqual(chooseExperiment('exp.yaml', undefined), { name: 'exp.yaml', isPreset: false });
  assert.throws(() => chooseExperiment('exp.yaml', 'quick'), /either "exp.yaml" or --preset quick/);
  assert.throws(() => chooseExperiment(undefined, undefined), /name an experiment/);
  assert.throws(() => chooseExperiment(undefined, 'exp.yaml'), /--preset exp.yaml: unknown preset/);
  assert.equal(parseJobs('3'), 3);
  assert.ok(parseJobs('auto') >= 1);
  assert.throws(() => parseJobs('0'), /--jobs must be a positive integer or auto, got "0"/);
  assert.equal(resumeCommand('quick', 'runs/quick', { modelsDir: 'models' }), 'npm start -- run quick --out runs/quick');
  assert.equal(resumeCommand('my exp.yaml', 'out', { modelsDir: 'm', shard: '1/2' }), `npm start -- run 'my exp.yaml' --out out --shard 1/2 --models-dir m`);
  assert.equal(parseExamples('12'), 12);
  assert.throws(() => parseExamples('0'), /--examples must be a positive integer, got "0"/);
  assert.throws(() => parseExamples('2.5'), /--examples must be a positive integer/);
  assert.equal(resumeCommand('organism', 'o', { modelsDir: 'models', backend: 'cuda', examples: '4' }), 'npm start -- run organism --out o --backend cuda --examples 4');
});

test('run --examples overrides the experiment\'s examples per configuration', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sf-runcli-'));
  const listing = await runCli(['run', 'organism', '--out', join(root, 'o'), '--dry-run', '--examples', '4']);
  assert.match(listing, /297 configurations × 4 examples/);
  await assert.rejects(runCli(['run', 'organism', '--dry-run', '--examples', 'many']), /--examples must be a positive integer, got "many"/);
});

test('run: Ctrl-C stops before the next example and says how to resume; the rerun finishes and ends with the report path', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sf-runcli-'));
  const modelDir = join(root, 'tiny');
  writeTinyCheckpoint(modelDir, 'llama');
  const file = join(root, 'exp.json');
  writeFileSync(file, JSON.stringify({
    name: 'echo-exp', models: [{ path: modelDir, name: 'tiny' }], backend: 'cpu', tasks: ['echo'], lengths: [64], sparsities: [0.5],
    methods: ['quest'], examples: 2, generation: { maxNewTokens: 3 }, chunkSize: 32,
  }));
  const dir = join(root, 'exp');
  // Delivered at the runner's first pause, i.e. before its first example.
  const timer = setTimeout(() => process.emit('SIGINT'), 0);
  let first: string;
  try {
    first = await runCli(['run', file, '--out', dir, '--report']);
  } finally {
    clearTimeout(timer);
    assert.equal(process.exitCode, 130);
    process.exitCode = 0;
  }
  assert.match(first, /Ctrl-C: stopping after the example in flight/);
  // The signal lands at one of the runner's pauses between examples: before the last one at least.
  const stoppedAfter = Number(/recorded (\d+) example\(s\)/.exec(first)?.[1]);
  assert.ok(stoppedAfter < 4, first);
  assert.match(first, new RegExp(`resume with the same command, e.g.\\n  npm start -- run ${file.replace(/[.]/g, '\\.')} --out ${dir}`));
  assert.equal(process.listenerCount('SIGINT'), 0, 'the handler is removed after the run');

  const second = await runCli(['run', file, '--out', dir, '--report', '--no-png', '--progress-interval', '0.001']);
  assert.match(second, new RegExp(`recorded ${4 - stoppedAfter} example\\(s\\) in \\d+s, ${stoppedAfter} already done`));
  assert.match(second, new RegExp(`\\[${4 - stoppedAfter}/${4 - stoppedAfter} 100\\.0%\\]`), 'plain progress lines when the output is not a terminal');
  const reportPath = join(dir, 'report', 'report.html');
  assert.ok(second.trimEnd().endsWith(`report: ${reportPath}`), second);
  assert.ok(existsSync(reportPath));
  const db = ResultsDb.openFile(join(dir, 'results.sqlite'), { readonly: true });
  assert.equal(db.examples().length, 4);
  db.close();
});

test('progress lines: counts, rate, ETA and a short configuration label', () => {
  assert.equal(shortConfigLabel('model=m|task=niah|n=1024|phase=decode|method=quest|s=0.5'), 'm niah n=1024 quest s=0.5');
  assert.equal(formatDuration(75), '1m15s');
  assert.equal(formatDuration(3700), '1h01m');
  const line = progressLine({ done: 10, total: 40, recorded: 9, failed: 1, current: 'model=m|task=vt|n=2048|phase=dense|method=dense|s=0' }, 20);
  assert.equal(line, '[10/40 25.0%] 0.50 ex/s, ETA 1m00s, elapsed 20s, 1 unbuildable | m vt n=2048 dense s=0');
  assert.match(progressLine({ done: 0, total: 5, recorded: 0, failed: 0, current: null }, 0), /^\[0\/5 0\.0%\] 0\.00 ex\/s, ETA \?, elapsed 0s$/);
});
