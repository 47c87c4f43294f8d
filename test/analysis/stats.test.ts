import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  averageRanks, logGamma, pairedNonInferiorityTest, spearman, regularizedIncompleteBeta, sampleVariance, studentTCdf, studentTQuantile, summarize,
} from '../../src/analysis/stats.js';

const close = (a: number, b: number, tol: number, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);

test('log-gamma and the incomplete beta match closed forms', () => {
  close(logGamma(5), Math.log(24), 1e-12);
  close(logGamma(0.5), 0.5 * Math.log(Math.PI), 1e-12);
  // I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 − (1 − x)^b.
  close(regularizedIncompleteBeta(0.3, 1, 1), 0.3, 1e-12);
  close(regularizedIncompleteBeta(0.7, 3, 1), 0.7 ** 3, 1e-12);
  close(regularizedIncompleteBeta(0.2, 1, 4), 1 - 0.8 ** 4, 1e-12);
});

test('Student t CDF: Cauchy (df 1) and df 2 closed forms, symmetry', () => {
  for (const t of [-7, -1.3, 0, 0.4, 2.5, 30]) {
    close(studentTCdf(t, 1), 0.5 + Math.atan(t) / Math.PI, 1e-12, `df1 t=${t}`);
    close(studentTCdf(t, 2), 0.5 + t / (2 * Math.sqrt(2 + t * t)), 1e-12, `df2 t=${t}`);
    close(studentTCdf(t, 9) + studentTCdf(-t, 9), 1, 1e-12);
  }
});

test('Student t quantiles match tables', () => {
  close(studentTQuantile(0.975, 10), 2.228138852, 1e-8);
  close(studentTQuantile(0.95, 4), 2.131846786, 1e-8);
  close(studentTQuantile(0.975, 1), 12.70620474, 1e-7);
  close(studentTQuantile(0.025, 30), -2.042272456, 1e-8);
  close(studentTQuantile(0.99, 2), 6.964556734, 1e-8);
});

test('summaries: ddof-1 variance, dropped count, t interval; SPEC conventions for n ≤ 1', () => {
  const s = summarize([1, 0, 1, 1, null, 0]);
  assert.equal(s.n, 5);
  assert.equal(s.dropped, 1);
  close(s.mean, 0.6, 1e-15);
  close(s.variance, 0.3, 1e-15);
  const half = 2.776445105 * Math.sqrt(0.3 / 5); // t_{0.975, 4}
  close(s.ci![0], 0.6 - half, 1e-8);
  close(s.ci![1], 0.6 + half, 1e-8);
  assert.deepEqual(summarize([0.4]), { n: 1, dropped: 0, mean: 0.4, variance: 0, ci: null });
  assert.deepEqual(summarize([null, null]), { n: 0, dropped: 2, mean: 0, variance: 0, ci: null });
  assert.equal(sampleVariance([]), 0);
});

test('paired one-sided t-test: a known p-value', () => {
  // Differences 1..5: mean 3, sd √2.5, t = 3/(√2.5/√5) = 3√2 with 4 df.
  const dense = [0, 0, 0, 0, 0];
  const r = pairedNonInferiorityTest([1, 2, 3, 4, 5], dense, 0);
  close(r.t, 3 * Math.SQRT2, 1e-12);
  assert.equal(r.df, 4);
  // P(T4 > 3√2) from the closed form of the df-4 CDF:
  // F(t) = 1/2 + (3/8)·(t/√q)·(1 − t²/(12q)), q = 1 + t²/4.
  const t = 3 * Math.SQRT2;
  const q = 1 + (t * t) / 4;
  const cdf4 = 0.5 + (3 / 8) * (t / Math.sqrt(q)) * (1 - (t * t) / (12 * q));
  close(r.pValue, 1 - cdf4, 1e-12);
  close(r.pValue, 0.0066178, 1e-7);
});

test('paired test with a margin: a small drop within δ is preserved, a large one is not', () => {
  const dense = Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? 0 : 1));
  const sparseSame = [...dense];
  assert.equal(pairedNonInferiorityTest(sparseSame, dense, 0.05).pValue, 0, 'identical outputs clear any positive margin');
  assert.equal(pairedNonInferiorityTest(sparseSame, dense, 0).pValue, 1, 'with δ = 0 identical outputs show no improvement');
  const sparseWorse = dense.map((d, i) => (i < 20 ? 0 : d));
  const r = pairedNonInferiorityTest(sparseWorse, dense, 0.05);
  assert.ok(r.meanDifference < -0.3);
  assert.ok(r.pValue > 0.99);
  assert.throws(() => pairedNonInferiorityTest([1], [1, 2], 0), /paired/);
});

test('Spearman ρ: ties get average ranks; monotone data give ρ = ±1; a known value', () => {
  assert.deepEqual(averageRanks([10, 20, 20, 5]), [2, 3.5, 3.5, 1]);
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 45]).rho, 1);
  assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]).rho, -1);
  // x ranks 1..5, y ranks 2,1,4,3,5: ρ = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·4/120 = 0.8 (no ties).
  const r = spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]);
  assert.ok(Math.abs(r.rho - 0.8) < 1e-12);
  // t = 0.8·√(3/0.36) = 2.3094 with 3 df: two-sided p = 0.1041.
  assert.ok(Math.abs(r.pValue! - 0.10408) < 1e-4, `p = ${r.pValue}`);
  assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3]).rho));
});
