import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAttentionPlan, describeBudget, listMethods } from '../../src/methods/index.js';
import { achievedSparsity, runDecode, runPrefill, synthetic } from './helpers.js';

const lengths = [256, 700, 1500];
const targets = [0.5, 0.8, 0.95];

/** Per method: extra parameters so short test prompts exercise the budget search, not the floors. */
const testParams: Record<string, Record<string, unknown>> = {
  flexprefill: { minBudget: 16, approximationSize: 128 },
};

for (const method of listMethods().filter((m) => m.id !== 'dense')) {
  test(`${method.id}: achieved sparsity meets the budget, or the method says why`, () => {
    for (const n of lengths) {
      const data = synthetic(n, 4, 2, 16, 1000 + n);
      for (const s of targets) {
        const options = { sparsity: s, params: testParams[method.id] ?? {} };
        const desc = describeBudget(method.id, n, options);
        const plan = createAttentionPlan(method.id, options);
        const counts = method.phase === 'prefill' ? runPrefill(plan.prefill, data).counts : runDecode(plan.decode, data, 1, 9).counts[0];
        const achieved = achievedSparsity(counts);
        const label = `n=${n} s=${s} achieved=${achieved.toFixed(4)} expected=${desc.expectedSparsity?.toFixed(4)}`;
        // Never much sparser than asked unless the method says why (integer counts round).
        assert.ok(achieved <= s + 0.02 || desc.note, label);
        if (desc.expectedSparsity !== null) {
          assert.ok(Math.abs(achieved - desc.expectedSparsity) <= desc.tolerance + 1e-9, label);
          if (Math.abs(desc.expectedSparsity - s) > desc.resolution) assert.ok(desc.note, `${label}: a gap needs a reason`);
        } else {
          assert.ok(desc.note, `${label}: no expectation needs a reason`);
        }
      }
    }
  });
}

test('budget searches land within their tolerance at a length where no floor binds', () => {
  const n = 2048;
  const data = synthetic(n, 2, 1, 16, 77);
  for (const [id, params] of [['vertical_and_slash', { approximationSize: 64 }], ['flexprefill', { minBudget: 16, approximationSize: 64 }]] as const) {
    for (const s of [0.7, 0.9]) {
      const desc = describeBudget(id, n, { sparsity: s, params });
      const achieved = achievedSparsity(runPrefill(createAttentionPlan(id, { sparsity: s, params }).prefill, data).counts);
      assert.ok(Math.abs(achieved - s) <= desc.tolerance, `${id} s=${s}: achieved ${achieved}`);
    }
  }
});
