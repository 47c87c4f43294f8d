/**
 * The runner end to end on a tiny random checkpoint, with the echo task fixture (echo-task.ts), so
 * scoring, dropping, resume and sharding are all exercised on real generations with real attention
 * methods.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeDirectory } from '../../src/analysis/analyze.js';
import { allTables } from '../../src/analysis/tables.js';
import { exampleFlops } from '../../src/experiments/flops.js';
import { ResultsDb } from '../../src/experiments/results-db.js';
import { flopsShape, runExperiment } from '../../src/experiments/runner.js';
import { parseExperimentSpec } from '../../src/experiments/spec.js';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { echoGetTask as getTask } from './echo-task.js';

function setup() {
  const root = mkdtempSync(join(tmpdir(), 'sf-runner-'));
  const modelDir = join(root, 'tiny');
  writeTinyCheckpoint(modelDir, 'llama');
  const spec = parseExperimentSpec({
    models: [{ path: modelDir, name: 'tiny' }], backend: 'cpu', tasks: ['echo'], lengths: [96], sparsities: [0.5],
    methods: ['block_sparse', 'quest'], examples: 3, generation: { maxNewTokens: 4 }, chunkSize: 32,
  });
  return { root, modelDir, spec };
}

test('runner records every example once, resumes, and its FLOPs and sparsity are measured', async () => {
  const { root, modelDir, spec } = setup();
  const dir = join(root, 'exp');
  const first = await runExperiment({ dir, spec, getTask });
  assert.equal(first.configurations, 3);
  assert.equal(first.recorded, 9);
  assert.deepEqual(first.failedExamples, []);
  const again = await runExperiment({ dir, spec, getTask });
  assert.equal(again.recorded, 0, 'a second run finds everything done');
  assert.equal(again.skippedDone, 9);

  const db = ResultsDb.openFile(join(dir, 'results.sqlite'), { readonly: true });
  const rows = db.examples();
  db.close();
  assert.equal(rows.length, 9);
  assert.equal(rows.filter((r) => r.score === null).length, 3, 'example 2 of each configuration is dropped');
  const shape = flopsShape(loadCheckpoint(modelDir).config);
  for (const r of rows) {
    if (r.phase === 'dense') {
      assert.equal(r.prefillSparsity, 0);
      assert.equal(r.decodeSparsity, 0);
      // Dense FLOPs are exactly the closed form.
      assert.equal(r.flopsTotal, exampleFlops(shape, { inputTokens: r.inputTokens, outputTokens: r.outputTokens }).total);
    } else if (r.phase === 'prefill') {
      assert.ok(r.prefillSparsity! > 0.2, `block_sparse achieved ${r.prefillSparsity}`);
      assert.equal(r.decodeSparsity, 0);
    } else {
      assert.equal(r.prefillSparsity, 0);
      if (r.outputTokens > 1) assert.ok(r.decodeSparsity! > 0, `quest achieved ${r.decodeSparsity}`);
    }
  }
  const analysis = analyzeDirectory(dir);
  assert.equal(analysis.configurations.length, 3);
  assert.equal(analysis.preservation.tests.length, 2);
});

test('shards cover the grid disjointly and merge into the full result', async () => {
  const { root, spec } = setup();
  const a = join(root, 'shard1'), b = join(root, 'shard2');
  const r1 = await runExperiment({ dir: a, spec, getTask, shard: { index: 1, count: 2 } });
  const r2 = await runExperiment({ dir: b, spec, getTask, shard: { index: 2, count: 2 } });
  assert.equal(r1.recorded + r2.recorded, 9);
  assert.ok(r1.recorded > 0 && r2.recorded > 0);
  const merged = ResultsDb.openFile(join(a, 'results.sqlite'));
  assert.equal(merged.mergeFrom(join(b, 'results.sqlite')), r2.recorded);
  assert.equal(merged.examples().length, 9);
  merged.close();
});

test('unknown tasks and bad method options fail before any model is loaded', async () => {
  const { root, spec } = setup();
  await assert.rejects(runExperiment({ dir: join(root, 'x'), spec: { ...spec, tasks: ['nope'] }, getTask }), /unknown task "nope"/);
  const bad = parseExperimentSpec({ ...spec, models: [{ path: '/nonexistent', name: 'm' }], methods: [{ name: 'quest', params: { pageSize: 0 } }] });
  await assert.rejects(runExperiment({ dir: join(root, 'y'), spec: bad, getTask }), /configuration model=m\|task=echo.*pageSize must be >= 1/);
  await assert.rejects(runExperiment({ dir: join(root, 'z'), spec: { ...spec, backend: 'cuda' }, getTask }), /backend: cuda/);
  const missing = parseExperimentSpec({ ...spec, models: [{ path: join(root, 'nothing'), name: 'gone' }] });
  await assert.rejects(runExperiment({ dir: join(root, 'w'), spec: missing, getTask }), /model gone: no checkpoint at .*nothing/);
});

test('examples a task cannot build are reported and kept as build failures, not recorded', async () => {
  const { root, spec } = setup();
  const dir = join(root, 'fail');
  const short = parseExperimentSpec({ ...spec, lengths: [8, 96], methods: ['quest'], examples: 2 });
  const summary = await runExperiment({ dir, spec: short, getTask });
  assert.equal(summary.recorded, 4, 'n = 96 runs; n = 8 cannot be built');
  assert.equal(summary.failedExamples.length, 2);
  assert.match(summary.failedExamples[0].error, /task echo, length 8, seed 43, example 0: the prompt alone needs/);
  const analysis = analyzeDirectory(dir);
  assert.equal(analysis.buildFailures.length, 2);
  assert.deepEqual(analysis.buildFailures.map((f) => [f.length, f.exampleIndex]), [[8, 0], [8, 1]]);
  assert.ok(allTables(analysis).some((t) => t.title.startsWith('Examples the tasks could not build')));
});

test('gemma3 (sliding layers): sparsity over the full-attention layers, FLOPs over every layer', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sf-runner-g3-'));
  const modelDir = join(root, 'g3');
  writeTinyCheckpoint(modelDir, 'gemma3');
  const spec = parseExperimentSpec({
    models: [{ path: modelDir, name: 'g3' }], backend: 'cpu', tasks: ['echo'], lengths: [64], sparsities: [0.5],
    methods: ['block_sparse'], examples: 1, generation: { maxNewTokens: 2 }, chunkSize: 64,
  });
  const dir = join(root, 'exp');
  await runExperiment({ dir, spec, getTask });
  const config = loadCheckpoint(modelDir).config;
  assert.ok(config.layerTypes.includes('sliding') && config.layerTypes.includes('full'));
  const db = ResultsDb.openFile(join(dir, 'results.sqlite'), { readonly: true });
  const rows = db.db.prepare('SELECT c.phase, e.input_tokens, e.output_tokens, e.prefill_dense_pairs, e.prefill_sparsity, e.flops_total, e.head_detail_json FROM examples e JOIN configurations c ON c.key = e.config_key').all() as {
    phase: string; input_tokens: number; output_tokens: number; prefill_dense_pairs: number; prefill_sparsity: number; flops_total: number; head_detail_json: string;
  }[];
  db.close();
  const fullLayers = config.layerTypes.filter((t) => t === 'full').length;
  for (const r of rows) {
    const n = r.input_tokens;
    assert.equal(r.prefill_dense_pairs, ((n * (n + 1)) / 2) * config.numHeads * fullLayers, 'dense pairs of the full layers only');
    if (r.phase === 'dense') {
      assert.equal(r.flops_total, exampleFlops(flopsShape(config), { inputTokens: n, outputTokens: r.output_tokens }).total, 'windowed sliding layers in the FLOPs');
    } else {
      const detail = JSON.parse(r.head_detail_json) as { prefill: { attended: number[][]; dense: number[][] } };
      const total = (m: number[][]) => m.flat().reduce((a, b) => a + b, 0);
      const overAllLayers = 1 - total(detail.prefill.attended) / total(detail.prefill.dense);
      assert.ok(r.prefill_sparsity > 0, `block_sparse skips pairs on the full layers: ${r.prefill_sparsity}`);
      assert.ok(r.prefill_sparsity > overAllLayers, 'the dense sliding layers do not dilute the achieved sparsity');
    }
  }
});

test('task parameters reach the generator; unknown ones are refused before any model loads', async () => {
  const { root, spec } = setup();
  const withParams = parseExperimentSpec({ ...spec, methods: [], tasks: ['echo', { name: 'echo', params: { wordOffset: 1 } }] });
  const dir = join(root, 'params');
  const summary = await runExperiment({ dir, spec: withParams, getTask });
  assert.equal(summary.recorded, 6);
  const db = ResultsDb.openFile(join(dir, 'results.sqlite'), { readonly: true });
  const golds = db.db
    .prepare('SELECT c.task AS task, e.example_index AS i, e.gold AS gold FROM examples e JOIN configurations c ON c.key = e.config_key')
    .all() as { task: string; i: number; gold: string }[];
  db.close();
  const word = (task: string, i: number) => (JSON.parse(golds.find((g) => g.task === task && g.i === i)!.gold) as { word: string }).word;
  // The echo fixture picks word (seed + index + wordOffset): offset 1 gives example i the word of example i + 1.
  assert.equal(word('echo[wordOffset=1]', 0), word('echo', 1));
  assert.equal(word('echo[wordOffset=1]', 1), word('echo', 2));
  assert.notEqual(word('echo[wordOffset=1]', 2), word('echo', 2));
  const bad = parseExperimentSpec({ ...spec, tasks: [{ name: 'echo', params: { wordOfset: 1 } }] });
  await assert.rejects(runExperiment({ dir: join(root, 'bad'), spec: bad, getTask }), /task echo\[wordOfset=1\]: "echo" has no parameter "wordOfset" \(known: wordOffset\)/);
});
