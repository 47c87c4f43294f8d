/**
 * Small, dependency-free statistics: sample moments, Student's t distribution (CDF through the
 * regularised incomplete beta function, quantile by bisection), t confidence intervals and the
 * paired one-sided t-test used for accuracy preservation.
 */

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample variance with ddof = 1; 0 with at most one value (SPEC section 3's convention). */
export function sampleVariance(xs: readonly number[]): number {
  if (xs.length <= 1) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return s / (xs.length - 1);
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  const z = x - 1;
  let a = c[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let f = d;
  for (let m = 1; m <= 10_000; m++) {
    const m2 = 2 * m;
    // Even step.
    let num = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    f *= d * c;
    // Odd step.
    num = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return f;
}

/** I_x(a, b), the regularised incomplete beta function, for 0 ≤ x ≤ 1 and a, b > 0. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const logFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x);
  // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise.
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(logFront) * betaContinuedFraction(x, a, b)) / a;
  return 1 - (Math.exp(logFront) * betaContinuedFraction(1 - x, b, a)) / b;
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom (df > 0). */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new Error(`studentTCdf: degrees of freedom must be positive, got ${df}`);
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  const x = df / (df + t * t);
  const tail = 0.5 * regularizedIncompleteBeta(x, df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t (0 < p < 1), by bisection on the CDF. */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`studentTQuantile: p must be in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  let lo = -1, hi = 1;
  while (studentTCdf(lo, df) > p) lo *= 2;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid; else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface Summary {
  /** Examples with a score. */
  n: number;
  /** Examples the scorer dropped (score null). */
  dropped: number;
  /** Mean score; 0 with no scored example. */
  mean: number;
  /** Sample variance (ddof 1); 0 with at most one scored example. */
  variance: number;
  /** Two-sided Student-t interval mean ± t_{1−(1−level)/2, n−1}·sd/√n; null below two examples. */
  ci: [number, number] | null;
}

export function summarize(scores: readonly (number | null)[], level = 0.95): Summary {
  const xs = scores.filter((s): s is number => s !== null);
  const m = mean(xs);
  const v = sampleVariance(xs);
  let ci: [number, number] | null = null;
  if (xs.length >= 2) {
    const half = studentTQuantile(1 - (1 - level) / 2, xs.length - 1) * Math.sqrt(v / xs.length);
    ci = [m - half, m + half];
  }
  return { n: xs.length, dropped: scores.length - xs.length, mean: m, variance: v, ci };
}

export interface PairedTestResult {
  /** Pairs used (examples scored under both configurations). */
  n: number;
  /** Mean of sparse − dense. */
  meanDifference: number;
  /** Standard deviation of the differences (ddof 1). */
  sdDifference: number;
  /** The margin δ in score units (already scaled when relative). */
  margin: number;
  /** t = (mean + δ) / (sd/√n); ±Infinity when sd = 0. */
  t: number;
  df: number;
  /** One-sided p-value of H0: mean(sparse − dense) ≤ −δ. */
  pValue: number;
}

/**
 * Paired one-sided t-test of H0: μ_sparse − μ_dense ≤ −δ against H1: μ_sparse − μ_dense > −δ
 * (non-inferiority with margin δ; δ = 0 gives the plain one-sided test that sparse is better).
 * With zero spread in the differences the p-value is 0 when the mean clears −δ and 1 otherwise.
 * Fewer than two pairs: p = 1 (nothing can be concluded).
 */
export function pairedNonInferiorityTest(sparse: readonly number[], dense: readonly number[], margin: number): PairedTestResult {
  if (sparse.length !== dense.length) throw new Error('pairedNonInferiorityTest: the two samples must be paired (same length)');
  const diffs = sparse.map((s, i) => s - dense[i]);
  const n = diffs.length;
  const m = mean(diffs);
  const sd = Math.sqrt(sampleVariance(diffs));
  if (n < 2) return { n, meanDifference: m, sdDifference: sd, margin, t: NaN, df: Math.max(0, n - 1), pValue: 1 };
  const shifted = m + margin;
  if (sd === 0) {
    const t = shifted > 0 ? Infinity : shifted < 0 ? -Infinity : 0;
    return { n, meanDifference: m, sdDifference: 0, margin, t, df: n - 1, pValue: shifted > 0 ? 0 : 1 };
  }
  const t = shifted / (sd / Math.sqrt(n));
  return { n, meanDifference: m, sdDifference: sd, margin, t, df: n - 1, pValue: 1 - studentTCdf(t, n - 1) };
}

/** Ranks 1..n with ties given their average rank. */
export function averageRanks(xs: readonly number[]): number[] {
  const order = xs.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k][1]] = rank;
    i = j + 1;
  }
  return ranks;
}

export function pearson(x: readonly number[], y: readonly number[]): number {
  const mx = mean(x), my = mean(y);
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < x.length; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? NaN : sxy / Math.sqrt(sxx * syy);
}

export interface RankCorrelation {
  n: number;
  /** Spearman's ρ: Pearson correlation of the average ranks; NaN when either side is constant. */
  rho: number;
  /** Two-sided p-value from t = ρ·√((n − 2)/(1 − ρ²)) with n − 2 degrees of freedom; null below 3 pairs. */
  pValue: number | null;
}

/** Spearman's rank correlation (the paper's Table 4 statistic for held-out predictions). */
export function spearman(x: readonly number[], y: readonly number[]): RankCorrelation {
  if (x.length !== y.length) throw new Error('spearman: the samples must be paired (same length)');
  const n = x.length;
  const rho = pearson(averageRanks(x), averageRanks(y));
  if (n < 3 || Number.isNaN(rho)) return { n, rho, pValue: null };
  if (Math.abs(rho) >= 1) return { n, rho, pValue: 0 };
  const t = rho * Math.sqrt((n - 2) / (1 - rho * rho));
  return { n, rho, pValue: 2 * (1 - studentTCdf(Math.abs(t), n - 2)) };
}
