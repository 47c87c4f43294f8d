/**
 * Worker processes (`jobs`): the same records as one process, every unit once, and a stop signal
 * ends the run early with what was recorded kept, so a rerun finishes the rest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResultsDb } from '../../src/experiments/results-db.js';
import { loaderExecArgv } from '../../src/experiments/runner-jobs.js';
import { runExperiment } from '../../src/experiments/runner.js';
import { parseExperimentSpec } from '../../src/experiments/spec.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { echoGetTask } from './echo-task.js';

const taskModule = new URL(`./echo-task.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url).href;

function records(dir: string): unknown[] {
  const db = ResultsDb.openFile(join(dir, 'results.sqlite'), { readonly: true });
  const rows = db.db.prepare(`SELECT config_key, example_index, output, score, output_tokens, prefill_attended_pairs, decode_attended_pairs,
    flops_total, head_detail_json FROM examples ORDER BY config_key, example_index`).all();
  db.close();
  return rows;
}

function setup() {
  const root = mkdtempSync(join(tmpdir(), 'sf-jobs-'));
  const modelDir = join(root, 'tiny');
  writeTinyCheckpoint(modelDir, 'llama');
  const spec = parseExperimentSpec({
    models: [{ path: modelDir, name: 'tiny' }], backend: 'cpu', tasks: ['echo'], lengths: [48, 64], sparsities: [0.5],
    methods: ['block_sparse', 'quest', 'snapkv'], examples: 3, generation: { maxNewTokens: 3 }, chunkSize: 32,
  });
  return { root, spec };
}

test('two worker processes record exactly what one process records', async () => {
  const { root, spec } = setup();
  const one = join(root, 'one'), two = join(root, 'two');
  const a = await runExperiment({ dir: one, spec, getTask: echoGetTask });
  const seen = new Set<string>();
  const b = await runExperiment({ dir: two, spec, getTask: echoGetTask, jobs: 2, taskModule, onProgress: (p) => { if (p.current) seen.add(p.current); } });
  assert.equal(a.recorded, 24);
  assert.equal(b.recorded, 24);
  assert.equal(b.interrupted, false);
  assert.deepEqual(records(two), records(one));
  assert.ok(seen.size >= 4, 'progress reports the configurations in flight');
});

test('a stop signal ends a multi-process run early; the rerun records the rest', async () => {
  const { root, spec } = setup();
  const dir = join(root, 'stop');
  const abort = new AbortController();
  const first = await runExperiment({
    dir, spec, getTask: echoGetTask, jobs: 2, taskModule, signal: abort.signal,
    onProgress: (p) => { if (p.recorded >= 2) abort.abort(); },
  });
  assert.equal(first.interrupted, true);
  assert.ok(first.recorded >= 2 && first.recorded < 24, `recorded ${first.recorded}`);
  const second = await runExperiment({ dir, spec, getTask: echoGetTask, jobs: 2, taskModule });
  assert.equal(second.recorded + first.recorded, 24);
  assert.equal(second.skippedDone, first.recorded);
  assert.equal(records(dir).length, 24);
});

test('workers get the loader flags of this process and nothing else', () => {
  assert.deepEqual(
    loaderExecArgv(['--require', '/x/preflight.cjs', '--import', 'file:///x/loader.mjs', '--test-concurrency=2', '--enable-source-maps', '--max-old-space-size=100']),
    ['--require', '/x/preflight.cjs', '--import', 'file:///x/loader.mjs', '--enable-source-maps'],
  );
  assert.deepEqual(loaderExecArgv(['--import=tsx', '--test']), ['--import=tsx']);
});
