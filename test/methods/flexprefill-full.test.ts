import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlexPrefillFullPrefill, type FlexPrefillFullSettings, sqrtJensenShannon } from '../../src/methods/flexprefill-full.js';
import { achievedSparsity, maskedReference, maxAbsDiff, runPrefill, synthetic } from './helpers.js';

const settings = (over: Partial<FlexPrefillFullSettings> = {}): FlexPrefillFullSettings => ({
  blockSize: 32, tau: 0.1, minBudget: 32, maxBudget: null, gamma: 0.5, sparsity: null, ...over,
});

test('square-root JS divergence: 0 for equal distributions, sqrt(ln 2) for disjoint ones', () => {
  const p = Float64Array.from([0.5, 0.5, 0, 0]), q = Float64Array.from([0, 0, 0.5, 0.5]);
  assert.equal(sqrtJensenShannon(p, p, 4), 0);
  assert.ok(Math.abs(sqrtJensenShannon(p, q, 4) - Math.sqrt(Math.LN2)) < 1e-12);
});

test('FlexPrefill (full): output and counts equal masked attention over its block mask', () => {
  for (const tau of [0, 1]) {
    const data = synthetic(300, 4, 2, 8, 90 + tau);
    const method = new FlexPrefillFullPrefill(settings({ tau }));
    method.keepMasks = true;
    const got = runPrefill(method, data);
    const nb = Math.ceil(300 / 32);
    const ref = maskedReference(data, (h, q, k) => k <= q && method.lastMasks[h][Math.floor(q / 32) * nb + Math.floor(k / 32)] === 1);
    assert.ok(maxAbsDiff(got.out, ref.out) < 1e-5);
    assert.deepEqual(Array.from(got.counts.attended), ref.pairs);
    // tau = 1 makes every head query-aware, tau = 0 none.
    assert.equal(method.lastDecisions.get(0)!.counts.queryAwareHeads, tau === 1 ? '4/4' : '0/4');
    for (const mask of method.lastMasks) {
      for (let i = 0; i < nb; i++) assert.ok(mask[i * nb] === 1 && mask[i * nb + i] === 1, 'block 0 and the diagonal block are kept');
    }
  }
});

test('FlexPrefill (full): a planted key\'s block is read by every later query block', () => {
  const data = synthetic(400, 4, 2, 16, 93, 0.3);
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = data.shape;
  for (let q = 0; q < 400; q++) for (let h = 0; h < H; h++) data.queries[(q * H + h) * D] += 3;
  for (let h = 0; h < Hkv; h++) data.keys[(150 * Hkv + h) * D] = 4; // key block 4 (128..159)
  const method = new FlexPrefillFullPrefill(settings({ tau: 0, gamma: 0.3 }));
  method.keepMasks = true;
  runPrefill(method, data);
  const nb = Math.ceil(400 / 32);
  for (const mask of method.lastMasks) for (let i = 4; i < nb; i++) assert.equal(mask[i * nb + 4], 1, `query block ${i}`);
});

test('FlexPrefill (full): short prompts run dense; a target sparsity is met through gamma', () => {
  const short = synthetic(200, 2, 1, 8, 94);
  const method = new FlexPrefillFullPrefill(settings({ minBudget: 1024, blockSize: 128 }));
  assert.equal(achievedSparsity(runPrefill(method, short).counts), 0);
  assert.match(method.lastDecisions.get(0)!.note ?? '', /runs dense/);
  const data = synthetic(1024, 2, 1, 8, 95);
  for (const s of [0.5, 0.7]) {
    const target = new FlexPrefillFullPrefill(settings({ gamma: null, sparsity: s }));
    const achieved = achievedSparsity(runPrefill(target, data).counts);
    assert.ok(Math.abs(achieved - s) < 0.06, `s=${s}: achieved ${achieved}`);
  }
});
