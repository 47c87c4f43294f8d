import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aggregate } from '../../src/tasks/index.js';

test('aggregate: mean, sample variance (ddof 1), dropped count, scores kept in order', () => {
  const a = aggregate([1, 0, null, 0.5]);
  assert.equal(a.mean, 0.5);
  assert.equal(a.variance, 0.25);
  assert.equal(a.n, 3);
  assert.equal(a.dropped, 1);
  assert.deepEqual(a.scores, [1, 0, null, 0.5]);
});

test('aggregate: variance 0 with one scored example, mean 0 with none', () => {
  assert.deepEqual(aggregate([0.7, null]), { mean: 0.7, variance: 0, n: 1, dropped: 1, scores: [0.7, null] });
  assert.deepEqual(aggregate([null, null]), { mean: 0, variance: 0, n: 0, dropped: 2, scores: [null, null] });
  assert.deepEqual(aggregate([]), { mean: 0, variance: 0, n: 0, dropped: 0, scores: [] });
  assert.throws(() => aggregate([Number.NaN]), /not a finite number/);
});
