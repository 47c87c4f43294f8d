import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aggregateByConfiguration, methodVariant } from '../../src/analysis/aggregate.js';
import { isoFlopsPoints } from '../../src/analysis/isoflops.js';
import { largestPreservedSparsity, preservationTests } from '../../src/analysis/preservation.js';
import type { ExampleRow } from '../../src/experiments/results-db.js';

test('a variant names the fixed parameters, not the sparsity-axis ones', () => {
  assert.equal(methodVariant('block_sparse', {}), 'block_sparse');
  assert.equal(methodVariant('block_sparse', { chunkSize: 64 }), 'block_sparse[chunkSize=64]');
  // topChunks is block_sparse's budget parameter: a swept value stays on the same curve.
  assert.equal(methodVariant('block_sparse', { topChunks: 40, chunkSize: 64 }), 'block_sparse[chunkSize=64]');
  assert.equal(methodVariant('flexprefill', { alpha: 0.9 }), 'flexprefill');
  // sorted by name, so the order the experiment listed them in does not matter
  assert.equal(methodVariant('quest', { shareHeads: false, pageSize: 32 }), methodVariant('quest', { pageSize: 32, shareHeads: false }));
  // an unknown id keeps every parameter: nothing is merged on a guess
  assert.equal(methodVariant('my_method', { topChunks: 3 }), 'my_method[topChunks=3]');
});

/** Two chunk sizes of block_sparse at the same sparsities: c = 16 preserves accuracy, c = 64 does not at 0.9. */
function rows(): ExampleRow[] {
  const out: ExampleRow[] = [];
  const add = (configKey: string, method: string, params: ExampleRow['params'], s: number, score: (i: number) => number) => {
    for (let i = 0; i < 40; i++) {
      out.push({
        configKey, model: 'm', modelParams: 10, task: 'niah', length: 1024, phase: method === 'dense' ? 'dense' : 'prefill', method,
        requestedSparsity: s, params, exampleIndex: i, score: score(i), metric: 'accuracy', inputTokens: 1000, outputTokens: 10,
        prefillSparsity: s, decodeSparsity: 0, flopsPrefill: 100 * (1 - s), flopsDecode: 1, flopsTotal: 100 * (1 - s) + 1, prefillMs: 1, decodeMs: 1,
      });
    }
  };
  add('dense', 'dense', {}, 0, () => 1);
  for (const s of [0.5, 0.9]) {
    add(`c16-${s}`, 'block_sparse', {}, s, () => 1);
    add(`c64-${s}`, 'block_sparse', { chunkSize: 64 }, s, (i) => (s === 0.9 && i % 2 === 0 ? 0 : 1));
  }
  return out;
}

test('two configurations of one method are two curves in every analysis', () => {
  const configs = aggregateByConfiguration(rows());
  const sparse = configs.filter((c) => c.phase !== 'dense');
  assert.deepEqual([...new Set(sparse.map((c) => c.method))].sort(), ['block_sparse', 'block_sparse[chunkSize=64]']);
  assert.ok(sparse.every((c) => c.methodId === 'block_sparse'));
  const largest = largestPreservedSparsity(preservationTests(configs));
  const by = new Map(largest.map((l) => [l.method, l.largestPreservedSparsity]));
  assert.equal(by.get('block_sparse'), 0.9);
  assert.equal(by.get('block_sparse[chunkSize=64]'), 0.5);
  // isoFLOPS: one point per variant and sparsity, each with its own accuracy (not the two averaged)
  const points = isoFlopsPoints(configs).filter((p) => p.phase === 'prefill' && p.sparsity === 0.9);
  assert.deepEqual(points.map((p) => [p.method, p.accuracy]).sort(), [['block_sparse', 1], ['block_sparse[chunkSize=64]', 0.5]]);
});
