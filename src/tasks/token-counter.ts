/**
 * Token counts of text pieces, memoised per tokenizer. Generators size their contexts by summing the
 * counts of pieces (sentences, words, documents) instead of re-tokenising the whole prompt after each
 * addition; the finished prompt is then tokenised once to check the bounds (length.ts).
 */
import type { TextTokenizer } from '../engine/tokenizer.js';

const MAX_CACHED = 500_000;
const caches = new WeakMap<TextTokenizer, Map<string, number>>();

export class TokenCounter {
  private readonly cache: Map<string, number>;

  constructor(readonly tokenizer: TextTokenizer) {
    let cache = caches.get(tokenizer);
    if (!cache) {
      cache = new Map();
      caches.set(tokenizer, cache);
    }
    this.cache = cache;
  }

  /** Tokens of `text` alone (no special tokens, no template); memoised (use for repeated pieces). */
  count(text: string): number {
    const hit = this.cache.get(text);
    if (hit !== undefined) return hit;
    const n = this.tokenizer.encode(text).length;
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(text, n);
    return n;
  }

  /** Tokens of `text`, not memoised (use for one-off long texts). */
  countOnce(text: string): number {
    return this.tokenizer.encode(text).length;
  }
}

/**
 * Largest m in [lo, hi] with exact(m) ≤ budget, for a cost that grows with m. `estimate` is a cheap
 * sum of piece counts; it is calibrated against `exact` (one full tokenisation each) until the chosen
 * m stops moving, so only a handful of full tokenisations are spent. Returns lo − 1 when even lo is
 * over budget.
 */
export function largestFitting(args: {
  lo: number;
  hi: number;
  budget: number;
  estimate: (m: number) => number;
  exact: (m: number) => number;
}): number {
  const { lo, hi, budget, estimate, exact } = args;
  const searchEstimate = (offset: number): number => {
    let left = lo - 1;
    let right = hi;
    while (left < right) {
      const mid = Math.floor((left + right + 1) / 2);
      if (estimate(mid) + offset <= budget) left = mid;
      else right = mid - 1;
    }
    return left;
  };
  let offset = 0;
  let best = lo - 1;
  const tried = new Set<number>();
  for (let round = 0; round < 6; round++) {
    const m = searchEstimate(offset);
    if (m < lo || tried.has(m)) break;
    tried.add(m);
    const cost = exact(m);
    if (cost <= budget) best = Math.max(best, m);
    offset = cost - estimate(m);
  }
  if (best >= lo) {
    // Step up while the next count still fits exactly (the estimate may have been pessimistic).
    for (let step = 0; step < 8 && best < hi && !tried.has(best + 1) && exact(best + 1) <= budget; step++) {
      best++;
      tried.add(best);
    }
    return best;
  }
  // The calibrated estimate kept overshooting: walk down exactly from the last guess.
  let m = Math.min(hi, searchEstimate(offset));
  while (m >= lo && exact(m) > budget) m--;
  return m;
}
