import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueryWindow, achievedSparsity, addHeadCounts, emptyAttentionCounts } from '../../src/engine/forward-state.js';

test('QueryWindow keeps the last `capacity` rows across pushes of any size', () => {
  const w = new QueryWindow(4, 2); // rows of 2 floats
  const rows = (from: number, n: number) => Float32Array.from({ length: 2 * n }, (_, i) => from + Math.floor(i / 2));
  w.push(rows(0, 3), 3, 0); // positions 0..2
  assert.deepEqual([...w.view()], [0, 0, 1, 1, 2, 2]);
  assert.equal(w.start, 0);
  w.push(rows(3, 2), 2, 3); // positions 3..4: keeps 1..4
  assert.deepEqual([...w.view()], [1, 1, 2, 2, 3, 3, 4, 4]);
  assert.equal(w.start, 1);
  w.push(rows(5, 6), 6, 5); // a push larger than the capacity: keeps 7..10
  assert.deepEqual([...w.view()], [7, 7, 8, 8, 9, 9, 10, 10]);
  assert.equal(w.start, 7);
  assert.equal(w.length, 4);
});

test('achievedSparsity: over all layers or a subset; counts add per layer and head', () => {
  const c = emptyAttentionCounts(2, 2);
  addHeadCounts(c.prefill, 0, 2, { attended: Float64Array.of(10, 10), dense: Float64Array.of(10, 10) });
  addHeadCounts(c.prefill, 1, 2, { attended: Float64Array.of(1, 3), dense: Float64Array.of(10, 10) });
  addHeadCounts(c.prefill, 1, 2, { attended: Float64Array.of(1, 3), dense: Float64Array.of(10, 10) });
  assert.deepEqual([...c.prefill.attended], [10, 10, 2, 6]);
  assert.equal(achievedSparsity(c.prefill), 1 - 28 / 60);
  assert.equal(achievedSparsity(c.prefill, [1], 2), 1 - 8 / 40);
  assert.equal(achievedSparsity(c.decode), 0, 'no pairs: sparsity 0');
});
