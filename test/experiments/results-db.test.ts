import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exampleFlops } from '../../src/experiments/flops.js';
import { type ExampleRecord, ResultsDb } from '../../src/experiments/results-db.js';
import { expandExperiment, parseExperimentSpec } from '../../src/experiments/spec.js';
import { shape } from './synthetic-db.js';

const spec = parseExperimentSpec({ models: [{ path: 'm', name: 'm' }], tasks: ['niah'], lengths: [64], sparsities: [0.5], methods: ['quest'], examples: 3 });
const configs = expandExperiment(spec);
const shp = shape(16, 2);

function row(configKey: string, exampleIndex: number, promptHash = `h${exampleIndex}`): ExampleRecord {
  return {
    configKey, exampleIndex, promptHash, output: 'o', score: exampleIndex === 2 ? null : 1, inputTokens: 60, outputTokens: 4,
    prefill: { attendedPairs: 100, densePairs: 100 }, decode: { attendedPairs: 30, densePairs: 60 },
    headDetail: { decode: { attended: [[15, 15]], dense: [[30, 30]] } },
    flops: exampleFlops(shp, { inputTokens: 60, outputTokens: 4 }), prefillMs: 1, decodeMs: 2,
  };
}

test('record is idempotent per (configuration, example); isDone and doneIndices see it', () => {
  const db = ResultsDb.openDir(mkdtempSync(join(tmpdir(), 'sf-db-')));
  assert.equal(db.db.pragma('journal_mode', { simple: true }), 'wal');
  db.recordModel('m', 'm', shp);
  db.registerConfigurations(configs);
  db.registerConfigurations(configs);
  const key = configs[1].key;
  assert.equal(db.isDone(key, 0), false);
  assert.equal(db.record(row(key, 0)), true);
  assert.equal(db.record(row(key, 0)), false);
  assert.equal(db.isDone(key, 0), true);
  assert.throws(() => db.record(row(key, 0, 'other')), /already recorded with a different prompt/);
  assert.throws(() => db.record(row('nope', 0)), /not registered/);
  db.record(row(key, 2));
  assert.deepEqual([...db.doneIndices(key)].sort(), [0, 2]);
  const rows = db.examples();
  assert.equal(rows.length, 2);
  assert.equal(rows[0].decodeSparsity, 0.5);
  assert.equal(rows[0].prefillSparsity, 0);
  assert.equal(rows[1].score, null);
  assert.equal(rows[0].modelParams, db.models()[0].nonEmbeddingParams);
  assert.throws(() => db.recordModel('m', 'm', shape(32, 2)), /different config/);
  db.close();
});

test('shards written to separate files merge into one, skipping rows already present', () => {
  const a = ResultsDb.openDir(mkdtempSync(join(tmpdir(), 'sf-a-')));
  const b = ResultsDb.openDir(mkdtempSync(join(tmpdir(), 'sf-b-')));
  for (const db of [a, b]) {
    db.recordModel('m', 'm', shp);
    db.registerConfigurations(configs);
  }
  const key = configs[0].key;
  a.startRun(spec, { shard: '1/2' });
  const runB = b.startRun(spec, { shard: '2/2' });
  a.record(row(key, 0));
  b.record({ ...row(key, 0) });
  b.record({ ...row(key, 1), runId: runB });
  b.close();
  assert.equal(a.mergeFrom(b.path), 1);
  assert.equal(a.mergeFrom(b.path), 0, 'merging twice adds nothing');
  assert.deepEqual([...a.doneIndices(key)].sort(), [0, 1]);
  // A conflicting shard is refused.
  const c = ResultsDb.openDir(mkdtempSync(join(tmpdir(), 'sf-c-')));
  c.recordModel('m', 'm', shp);
  c.registerConfigurations(configs);
  c.record(row(key, 1, 'different'));
  c.close();
  assert.throws(() => a.mergeFrom(c.path), /differs between the files/);
  assert.deepEqual([...a.doneIndices(key)].sort(), [0, 1], 'a failed merge changes nothing');
  a.close();
});

test('build failures: noted, cleared, merged; files without the table read as none', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sf-bf-'));
  const db = ResultsDb.openDir(dir);
  db.recordBuildFailure({ model: 'm', task: 't', length: 8, exampleIndex: 0, error: 'too short' });
  db.recordBuildFailure({ model: 'm', task: 't', length: 8, exampleIndex: 1, error: 'too short' });
  db.clearBuildFailure('m', 't', 8, 0);
  assert.deepEqual(db.buildFailures(), [{ model: 'm', task: 't', length: 8, exampleIndex: 1, error: 'too short' }]);
  const other = ResultsDb.openDir(mkdtempSync(join(tmpdir(), 'sf-bf2-')));
  other.mergeFrom(db.path);
  assert.equal(other.buildFailures().length, 1);
  other.close();
  db.db.exec('DROP TABLE build_failures');
  db.close();
  const old = ResultsDb.openFile(join(dir, 'results.sqlite'), { readonly: true });
  assert.deepEqual(old.buildFailures(), []);
  old.close();
});
