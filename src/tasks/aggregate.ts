/**
 * Per-configuration statistics over per-example scores, as the original reports them: the mean and
 * the sample variance (ddof 1) of the scored examples; variance 0 with at most one scored example,
 * mean 0 with none; dropped examples (score null) are counted, not averaged. The per-example scores
 * are kept (in input order) because the paired tests of the analysis need them.
 */
export interface Aggregate {
  mean: number;
  variance: number;
  /** Scored (not dropped) examples. */
  n: number;
  dropped: number;
  scores: (number | null)[];
}

export function aggregate(scores: readonly (number | null)[]): Aggregate {
  const kept = scores.filter((s): s is number => s !== null);
  for (const s of kept) if (!Number.isFinite(s)) throw new Error(`aggregate: score ${s} is not a finite number`);
  const n = kept.length;
  const mean = n === 0 ? 0 : kept.reduce((a, b) => a + b, 0) / n;
  const variance = n <= 1 ? 0 : kept.reduce((a, s) => a + (s - mean) ** 2, 0) / (n - 1);
  return { mean, variance, n, dropped: scores.length - n, scores: scores.slice() };
}
