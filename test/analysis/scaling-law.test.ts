import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leastSquares } from '../../src/analysis/least-squares.js';
import { type ScalingObservation, compressionRatio, fitScalingLaw } from '../../src/analysis/scaling-law.js';
import { sigmoid, sigmoidLeastSquares } from '../../src/analysis/sigmoid-least-squares.js';

test('least squares recovers an exact linear model and reports R² = 1', () => {
  const X = [[1, 0], [1, 1], [1, 2], [1, 3]];
  const fit = leastSquares(X, [1, 3, 5, 7]);
  assert.ok(Math.abs(fit.coefficients[0] - 1) < 1e-12 && Math.abs(fit.coefficients[1] - 2) < 1e-12);
  assert.ok(Math.abs(fit.r2 - 1) < 1e-12);
  assert.throws(() => leastSquares([[1, 2], [2, 4], [3, 6]], [1, 2, 3]), /rank deficient/);
});

const TASK_EFFECT: Record<string, number> = { alpha: 0, beta: 0.12, gamma: -0.05 };

function plantedLaw(noise: (i: number) => number, tasks = Object.keys(TASK_EFFECT)): ScalingObservation[] {
  const rows: ScalingObservation[] = [];
  let i = 0;
  for (const params of [7e9, 14e9, 32e9, 72e9]) {
    for (const length of [16384, 32768, 65536, 131072]) {
      for (const s of [0, 0.5, 0.8, 0.9, 0.95]) {
        for (const task of tasks) {
          const acc = 0.2 + TASK_EFFECT[task] + 0.06 * Math.log(params / 1e9) - 0.03 * Math.log(length / 1024) - 0.08 * Math.log(compressionRatio(s));
          rows.push({ model: `m${params}`, params, task, length, sparsity: s, accuracy: acc + noise(i++) });
        }
      }
    }
  }
  return rows;
}

test('a planted log-linear law is recovered exactly, with zero held-out error', () => {
  const fit = fitScalingLaw(plantedLaw(() => 0), 'decode', 'quest', 'identity');
  assert.equal(fit.skipped, null);
  const c = fit.coefficients;
  assert.ok(Math.abs(c['ln N']! - 0.06) < 1e-9);
  assert.ok(Math.abs(c['ln n']! + 0.03) < 1e-9);
  assert.ok(Math.abs(c['ln k']! + 0.08) < 1e-9);
  // ε is the baseline task's intercept and absorbs the 1e9 and 1024 units: 0.2 − 0.06 ln 1e9 + 0.03 ln 1024
  assert.ok(Math.abs(c.intercept! - (0.2 - 0.06 * Math.log(1e9) + 0.03 * Math.log(1024))) < 1e-8);
  assert.equal(fit.baselineTask, 'alpha');
  assert.ok(Math.abs(fit.taskEffects.beta - 0.12) < 1e-9 && Math.abs(fit.taskEffects.gamma + 0.05) < 1e-9);
  assert.equal(fit.taskEffects.alpha, 0);
  assert.ok(Math.abs(fit.r2! - 1) < 1e-12);
  assert.ok(fit.cvRmse! < 1e-9);
  assert.equal(fit.cvFolds, 10, '240 points: 10 folds');
  assert.deepEqual(fit.heldOut.map((h) => h.axis), ['model size', 'length', 'compression']);
  for (const h of fit.heldOut) {
    assert.ok(h.rmse! < 1e-9, `${h.axis} held out`);
    assert.ok(Math.abs(h.r2! - 1) < 1e-9, `${h.axis} held-out R²`);
    assert.ok(h.spearman!.rho > 0.999, `${h.axis} held-out Spearman`);
    assert.deepEqual(Object.keys(h.spearmanByTask).sort(), ['alpha', 'beta', 'gamma']);
  }
  assert.equal(fit.heldOut[0].value, 72e9);
  assert.equal(fit.heldOut[0].rows, 60, '4 lengths × 5 sparsities × 3 tasks at the largest model');
});

test('with noise the coefficients stay close and R² is below one', () => {
  // Deterministic ±0.01 noise.
  const fit = fitScalingLaw(plantedLaw((i) => ((i * 7919) % 21 - 10) / 1000), 'prefill', 'x', 'identity');
  assert.ok(Math.abs(fit.coefficients['ln k']! + 0.08) < 0.01);
  assert.ok(fit.r2! < 1 && fit.r2! > 0.95);
  assert.ok(fit.heldOut.every((h) => h.rmse! < 0.03));
});

test('a single model size leaves ln N out and says why extrapolation in it is impossible', () => {
  const rows = plantedLaw(() => 0, ['alpha']).filter((r) => r.params === 7e9);
  const fit = fitScalingLaw(rows, 'decode', 'quest', 'identity');
  assert.equal(fit.coefficients['ln N'], null);
  assert.deepEqual(fit.taskEffects, {}, 'one task: no task effects');
  assert.ok(Math.abs(fit.coefficients['ln k']! + 0.08) < 1e-9);
  assert.deepEqual(fit.heldOut.map((h) => h.axis), ['length', 'compression']);
  const onlyDense = rows.filter((r) => r.sparsity === 0);
  assert.match(fitScalingLaw(onlyDense, 'decode', 'quest', 'identity').skipped!, /compression does not vary/);
  const twoLengths = plantedLaw(() => 0).filter((r) => r.length <= 32768);
  const lengthHold = fitScalingLaw(twoLengths, 'decode', 'q', 'identity').heldOut.find((h) => h.axis === 'length')!;
  assert.match(lengthHold.skipped!, /one length value/);
});

test('logit link: a planted σ(ε + δ_task + α ln N + β ln n + γ ln k) law is recovered by Gauss–Newton', () => {
  // Coefficients of the size of the paper's Table 3 (logit scale).
  const truth = { eps: -16.9, alpha: 1.31, beta: -1.15, gamma: -1.0, tasks: { alpha: 0, beta: 1.5, gamma: -1.6 } as Record<string, number> };
  const rows: ScalingObservation[] = [];
  for (const params of [7e9, 14e9, 32e9, 72e9]) {
    for (const length of [16384, 32768, 65536, 128000]) {
      for (const s of [0, 0.5, 0.8, 0.9, 0.95]) {
        for (const task of Object.keys(truth.tasks)) {
          const z = truth.eps + truth.tasks[task] + truth.alpha * Math.log(params) + truth.beta * Math.log(length) + truth.gamma * Math.log(compressionRatio(s));
          rows.push({ model: `m${params}`, params, task, length, sparsity: s, accuracy: sigmoid(z) });
        }
      }
    }
  }
  const fit = fitScalingLaw(rows, 'decode', 'quest');
  assert.equal(fit.link, 'logit');
  assert.equal(fit.skipped, null);
  assert.ok(Math.abs(fit.coefficients.intercept! - truth.eps) < 1e-4, `ε ${fit.coefficients.intercept}`);
  assert.ok(Math.abs(fit.coefficients['ln N']! - truth.alpha) < 1e-6);
  assert.ok(Math.abs(fit.coefficients['ln n']! - truth.beta) < 1e-6);
  assert.ok(Math.abs(fit.coefficients['ln k']! - truth.gamma) < 1e-6);
  assert.ok(Math.abs(fit.taskEffects.beta - 1.5) < 1e-6 && Math.abs(fit.taskEffects.gamma + 1.6) < 1e-6);
  assert.ok(fit.r2! > 1 - 1e-9);
  for (const h of fit.heldOut) assert.ok(h.mae! < 1e-6 && Object.values(h.maeByTask).every((m) => m < 1e-6), `${h.axis} held out`);
});

test('sigmoid least squares refuses a rank-deficient design', () => {
  assert.throws(() => sigmoidLeastSquares([[1, 2], [2, 4], [3, 6]], [0.2, 0.5, 0.7]), /rank deficient/);
});
