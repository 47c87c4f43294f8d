import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAttentionPlan, describeBudget, estimationFlops, getMethod, listMethods } from '../../src/methods/index.js';
import { cacheOf, synthetic, runPrefill, runDecode } from './helpers.js';

test('every method declares its four axes, phase and parameter defaults', () => {
  const ids = listMethods().map((m) => m.id);
  assert.deepEqual(ids, ['dense', 'sink_local_prefill', 'vertical_and_slash', 'flexprefill', 'flexprefill_full', 'block_sparse', 'sink_local_decode', 'quest', 'snapkv', 'ada_snapkv']);
  for (const m of listMethods()) {
    assert.ok(m.taxonomy.unit && m.taxonomy.importance && m.taxonomy.budget && m.taxonomy.kvCache, m.id);
    for (const b of m.budgetParams) assert.ok(m.params.some((p) => p.name === b), `${m.id}: ${b}`);
  }
  assert.equal(getMethod('snapkv').params.find((p) => p.name === 'kernelSize')?.default, 21);
  assert.equal(getMethod('vertical_and_slash').params.find((p) => p.name === 'approximationSize')?.default, 256);
  assert.equal(getMethod('flexprefill').params.find((p) => p.name === 'approximationSize')?.default, 512);
  assert.equal(getMethod('quest').params.find((p) => p.name === 'pageSize')?.default, 16);
  assert.equal(getMethod('block_sparse').params.find((p) => p.name === 'chunkSize')?.default, 16);
});

test('invalid sparsity, parameters and ids give clear errors', () => {
  for (const s of [1, -0.1, Number.NaN, 1.5]) {
    assert.throws(() => createAttentionPlan('quest', { sparsity: s }), /quest: sparsity must be a number in \[0, 1\)/);
  }
  assert.throws(() => createAttentionPlan('quest', { sparsity: '0.5' as unknown as number }), /sparsity must be a number/);
  assert.throws(() => createAttentionPlan('nope', { sparsity: 0.5 }), /unknown attention method "nope"/);
  assert.throws(() => createAttentionPlan('snapkv', { sparsity: 0.5, params: { window: 3 } }), /unknown parameter "window"/);
  assert.throws(() => createAttentionPlan('snapkv', { sparsity: 0.5, params: { tokenCapacity: 100 } }), /either sparsity or tokenCapacity/);
  assert.throws(() => createAttentionPlan('snapkv', {}), /a target sparsity \(or one of tokenCapacity\) is required/);
  assert.throws(() => createAttentionPlan('snapkv', { sparsity: 0.5, params: { kernelSize: 4 } }), /kernelSize must be odd/);
  assert.throws(() => createAttentionPlan('snapkv', { sparsity: 0.5, params: { kernelSize: 2.5 } }), /kernelSize must be an integer/);
  assert.throws(() => createAttentionPlan('quest', { params: { tokenBudget: 100 } }), /multiple of pageSize/);
  assert.throws(() => createAttentionPlan('block_sparse', { params: { topChunks: 2 } }), /topChunks must be >= 3/);
  assert.throws(() => createAttentionPlan('flexprefill', { params: { alpha: 1.5 } }), /alpha must be <= 1/);
  assert.throws(() => createAttentionPlan('quest', { sparsity: 0.5, params: { sharePages: 'yes' } }), /sharePages must be true or false/);
  assert.throws(() => createAttentionPlan('dense', { sparsity: 0.5 }), /dense: sparsity must be 0/);
  assert.throws(() => describeBudget('quest', 0, { sparsity: 0.5 }), /prompt length must be a positive integer/);
});

test('sparse methods refuse sliding-window layers and chunked prompts when they need the whole prompt', () => {
  const data = synthetic(100, 2, 1, 8, 1);
  const windowed = { ...data, shape: { ...data.shape, slidingWindow: 32 } };
  assert.throws(() => runPrefill(createAttentionPlan('vertical_and_slash', { sparsity: 0.5 }).prefill, windowed), /sliding-window layers/);
  assert.throws(() => runDecode(createAttentionPlan('quest', { sparsity: 0.5 }).decode, windowed, 1, 1), /sliding-window layers/);
  for (const id of ['vertical_and_slash', 'flexprefill', 'block_sparse']) {
    const plan = createAttentionPlan(id, { sparsity: 0.5 });
    assert.equal(plan.prefill.requiresWholePrompt, true);
    const out = new Float32Array(50 * 2 * 8);
    const cacheData = { ...data, n: 50 };
    assert.throws(() => plan.prefill.prefill({
      layer: 0, shape: data.shape, queries: data.queries, numQueries: 50, queryStart: 0, cache: cacheOf(cacheData), out, isLastChunk: false,
    }), /needs the whole prompt in one chunk/);
  }
  assert.equal(createAttentionPlan('sink_local_prefill', { sparsity: 0.5 }).prefill.requiresWholePrompt, false);
});

test('sink + local prefill gives the same result in chunks as in one piece', () => {
  const data = synthetic(120, 2, 1, 8, 3);
  const whole = runPrefill(createAttentionPlan('sink_local_prefill', { sparsity: 0.7 }).prefill, data);
  const method = createAttentionPlan('sink_local_prefill', { sparsity: 0.7 }).prefill;
  const out = new Float32Array(whole.out.length);
  let attended = 0;
  for (let start = 0; start < 120; start += 50) {
    const T = Math.min(50, 120 - start);
    // As the engine does: the cache holds positions up to the end of this chunk.
    const partial = cacheOf(data, start + T);
    const chunkOut = new Float32Array(T * 2 * 8);
    const counts = method.prefill({
      layer: 0, shape: data.shape, queries: data.queries.subarray(start * 16, (start + T) * 16), numQueries: T, queryStart: start, cache: partial, out: chunkOut, isLastChunk: start + T === 120,
    });
    out.set(chunkOut, start * 16);
    attended += counts.attended[0];
  }
  assert.deepEqual(out, whole.out);
  assert.equal(attended, whole.counts.attended[0]);
});

test('estimation FLOPs follow the documented formulas', () => {
  const shape = { numHeads: 8, numKvHeads: 2, headDim: 64 };
  const n = 4096;
  const lastQuery = (A: number) => 8 * (A * n - (A * (A - 1)) / 2) * (2 * 64 + 7);
  assert.equal(estimationFlops('vertical_and_slash', shape, n).atPrefill, lastQuery(256));
  assert.equal(estimationFlops('flexprefill', shape, n).atPrefill, lastQuery(512));
  assert.equal(estimationFlops('vertical_and_slash', shape, 100).atPrefill, 8 * (100 * 100 - 4950) * 135, 'A clamps to n');
  const B = 256;
  assert.equal(estimationFlops('block_sparse', shape, n).atPrefill, 10 * n * 64 + 8 * (B * (B + 1)) / 2 * 128);
  assert.deepEqual(estimationFlops('quest', shape, n), { atPrefill: 2 * 2 * n * 64, perDecodeToken: 4 * 8 * 256 * 64 + 2 * 2 * 64 });
  assert.equal(estimationFlops('snapkv', shape, n).atPrefill, 8 * (256 * n - 128 * 255) * 134 + 2 * 2 * n);
  assert.deepEqual(estimationFlops('dense', shape, n), { atPrefill: 0, perDecodeToken: 0 });
  assert.ok(estimationFlops('vertical_and_slash', shape, 2 * n).atPrefill > estimationFlops('vertical_and_slash', shape, n).atPrefill);
});
