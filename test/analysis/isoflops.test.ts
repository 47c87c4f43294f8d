import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type IsoFlopsPoint, compareDenseWithLargerSparse, isoFlopsPoints, paretoFrontier } from '../../src/analysis/isoflops.js';
import { aggregateByConfiguration } from '../../src/analysis/aggregate.js';
import type { ExampleRow } from '../../src/experiments/results-db.js';

test('Pareto frontier of hand-made points', () => {
  const pts = [
    { id: 'a', flops: 1, accuracy: 0.2 },
    { id: 'b', flops: 2, accuracy: 0.5 },
    { id: 'c', flops: 3, accuracy: 0.4 }, // dominated by b
    { id: 'd', flops: 4, accuracy: 0.7 },
    { id: 'e', flops: 4, accuracy: 0.6 }, // dominated by d (same FLOPs)
    { id: 'f', flops: 5, accuracy: 0.7 }, // dominated by d (same accuracy, more FLOPs)
    { id: 'g', flops: 0.5, accuracy: 0.1 },
  ];
  assert.deepEqual(paretoFrontier(pts).map((p) => p.id), ['g', 'a', 'b', 'd']);
  assert.deepEqual(paretoFrontier([]), []);
});

function pt(model: string, params: number, phase: IsoFlopsPoint['phase'], sparsity: number, accuracy: number, flops: number): IsoFlopsPoint {
  return { model, modelParams: params, length: 1024, phase, method: phase === 'dense' ? 'dense' : 'quest', sparsity, accuracy, flops, tasks: 1 };
}

test('larger sparse versus smaller dense at equal compute', () => {
  const points = [
    pt('small', 1, 'dense', 0, 0.5, 100),
    pt('large', 4, 'dense', 0, 0.8, 400),
    pt('large', 4, 'decode', 0.9, 0.7, 90),   // fits under small's 100 FLOPs and beats it
    pt('large', 4, 'decode', 0.5, 0.78, 250),
    pt('huge', 9, 'decode', 0.95, 0.75, 380), // fits under large's 400 but is worse than large dense
  ];
  const cmp = compareDenseWithLargerSparse(points);
  assert.equal(cmp.length, 2);
  assert.equal(cmp[0].dense.model, 'small');
  assert.equal(cmp[0].verdict, 'larger sparse is better');
  assert.equal(cmp[0].bestLargerSparse!.sparsity, 0.9);
  assert.equal(cmp[1].dense.model, 'large');
  assert.equal(cmp[1].verdict, 'smaller dense is at least as good');
  const none = compareDenseWithLargerSparse([pt('small', 1, 'dense', 0, 0.5, 100), pt('large', 4, 'decode', 0.5, 0.9, 300)]);
  assert.equal(none[0].verdict, 'no larger sparse model fits this compute');
});

test('tasks whose examples were all dropped are left out of a point, not counted as zero', () => {
  const row = (task: string, score: number | null, i: number): ExampleRow => ({
    configKey: `k-${task}`, model: 'm', modelParams: 10, task, length: 64, phase: 'dense', method: 'dense', requestedSparsity: 0, params: {},
    exampleIndex: i, score, metric: 'accuracy', inputTokens: 60, outputTokens: 2, prefillSparsity: 0, decodeSparsity: 0,
    flopsPrefill: 100, flopsDecode: 10, flopsTotal: 110, prefillMs: 1, decodeMs: 1,
  });
  const configs = aggregateByConfiguration([row('a', 1, 0), row('a', 0, 1), row('b', null, 0), row('b', null, 1)]);
  const [p] = isoFlopsPoints(configs);
  assert.equal(p.accuracy, 0.5);
  assert.equal(p.tasks, 1);
  assert.deepEqual(isoFlopsPoints(configs.filter((c) => c.task === 'b')), []);
});
