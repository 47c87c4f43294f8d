/**
 * The statistics and the decision rule of bench/vertical-slash-bracketed.ts (issue 9, session 9), kept
 * apart from the GPU code so that a CPU test pins them: the serpentine call order, paired ratios, each
 * variant's drift within a cell, a cell's status and a head-count group's decision. The thresholds are
 * the rule written down before the first measurement (docs/perf.md, Vertical-Slash, session 9).
 */

/**
 * The order in which round `round` calls `count` variants: 0, 1, ..., count − 1 on even rounds, the
 * reverse on odd ones. With a plain A B A B every B follows its A, so a clock ramping within the cell
 * biases every pair the same way; reversing each round cancels a linear drift out of the paired ratios.
 */
export function serpentineOrder(count: number, round: number): number[] {
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`serpentineOrder: count must be a positive integer (got ${count})`);
  if (!(Number.isInteger(round) && round >= 0)) throw new Error(`serpentineOrder: round must be a non-negative integer (got ${round})`);
  const order = Array.from({ length: count }, (_, i) => i);
  return round % 2 === 0 ? order : order.reverse();
}

export interface RatioSummary { median: number; min: number; max: number }

/** The middle value (the mean of the two middle ones for an even count). */
export function middle(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('middle: needs at least one value');
  const s = [...xs].sort((a, b) => a - b), h = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Ratios x / base per serpentine pair of rounds (rounds 2j and 2j + 1, in serpentineOrder): over such a
 * pair every variant's two calls sit at positions summing to the same value, so a drift linear in time
 * adds the same to sum(x) and sum(base) (no variant is favoured by its place in the order); summarised as their middle, min and max. Needs an even,
 * non-zero number of rounds, x and base in round order.
 */
export function pairedRatio(x: readonly number[], base: readonly number[]): RatioSummary {
  if (x.length !== base.length || x.length === 0 || x.length % 2 !== 0) {
    throw new Error(`pairedRatio: needs equal sample lists of an even, non-zero number of rounds (got ${x.length} and ${base.length})`);
  }
  const ratios: number[] = [];
  for (let j = 0; j < x.length; j += 2) {
    const xs = x[j] + x[j + 1], bs = base[j] + base[j + 1];
    if (!(x[j] > 0 && x[j + 1] > 0 && base[j] > 0 && base[j + 1] > 0)) throw new Error(`pairedRatio: rounds ${j}-${j + 1} have a non-positive time`);
    ratios.push(xs / bs);
  }
  return { median: middle(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}

/**
 * A variant's drift within a cell: (median of its last half of rounds − median of its first half) /
 * median of its first half; with an odd count the middle round is in neither half. Needs ≥ 2 rounds.
 */
export function drift(samples: readonly number[]): number {
  if (samples.length < 2) throw new Error(`drift: needs at least 2 rounds (got ${samples.length})`);
  const half = Math.floor(samples.length / 2);
  const first = middle(samples.slice(0, half)), last = middle(samples.slice(samples.length - half));
  return (last - first) / first;
}

/** The rule's thresholds (fractions, ratios candidate / baseline). */
export const BRACKET_RULE = {
  /** |drift| of the baseline or the candidate's estimation above this: the cell decides nothing. */
  maxDrift: 0.03,
  /** A pass: estimation ratio at most this and total ratio at most passTotal. */
  passEstimation: 0.97,
  passTotal: 1.01,
  /** A fail: estimation ratio above this or total ratio above failTotal. */
  failEstimation: 1.01,
  failTotal: 1.02,
  /** Between two passing candidates the one with more options wins only this far below (geometric means). */
  preferSimplerWithin: 0.01,
} as const;

/** FAILED: the candidate chose other counts, pairs or outputs than the baseline (a bug, not a timing). */
export type CellStatus = 'pass' | 'neutral' | 'fail' | 'invalid' | 'FAILED';

export interface CellMeasure {
  /** Paired ratios candidate / baseline. */
  estimation: RatioSummary;
  total: RatioSummary;
  /** Estimation drifts of the baseline and the candidate. */
  baselineDrift: number;
  candidateDrift: number;
  /** Whether the candidate matched the baseline's counts, pairs and output rows. */
  same: boolean;
}

/** A rule's cell thresholds (BRACKET_RULE, session 9's; ON_TOP_RULE, session 10's). */
export interface CellThresholds {
  readonly maxDrift: number;
  readonly passEstimation: number;
  readonly passTotal: number;
  readonly failEstimation: number;
  readonly failTotal: number;
}

/** A cell's status by `rule`'s thresholds (session 9's BRACKET_RULE unless told). */
export function cellStatus(m: CellMeasure, rule: CellThresholds = BRACKET_RULE): CellStatus {
  if (!m.same) return 'FAILED';
  if (Math.abs(m.baselineDrift) > rule.maxDrift || Math.abs(m.candidateDrift) > rule.maxDrift) return 'invalid';
  if (m.estimation.median > rule.failEstimation || m.total.median > rule.failTotal) return 'fail';
  if (m.estimation.median <= rule.passEstimation && m.total.median <= rule.passTotal) return 'pass';
  return 'neutral';
}

export interface StatusCount { pass: number; neutral: number; fail: number; invalid: number; FAILED: number; cells: number }

export function countStatuses(statuses: readonly CellStatus[]): StatusCount {
  const c: StatusCount = { pass: 0, neutral: 0, fail: 0, invalid: 0, FAILED: 0, cells: statuses.length };
  for (const s of statuses) c[s]++;
  return c;
}

/**
 * The many-heads group (H ≥ 32): passes when at most one cell does not pass (an invalid cell counts as
 * not passing), at least one passes, and none fails or FAILED (the rule's "5 of 6"; a one-cell run, as
 * session 9's warp check, needs its cell to pass).
 */
export function manyHeadsGroupPasses(c: StatusCount): boolean {
  return c.cells > 0 && c.fail === 0 && c.FAILED === 0 && c.pass >= Math.max(1, c.cells - 1);
}

/**
 * The few-heads group: the candidate joins the default at every head count only when the many-heads
 * group passed and here no cell fails, FAILED or is invalid, and at least half the cells pass.
 */
export function fewHeadsGroupPasses(c: StatusCount, manyHeadsPassed: boolean): boolean {
  return manyHeadsPassed && c.cells > 0 && c.fail === 0 && c.FAILED === 0 && c.invalid === 0 && c.pass >= c.cells / 2;
}

/** Geometric mean of ratios. */
export function geometricMean(xs: readonly number[]): number {
  if (xs.length === 0 || xs.some((x) => !(x > 0))) throw new Error('geometricMean: needs positive values');
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
}

export interface PassingCandidate { label: string; options: number; geoEstimation: number }

/**
 * Among candidates that passed a group: the one with the fewest options, unless another's geometric-mean
 * estimation ratio is at least preferSimplerWithin below it (then the lowest). null when none passed.
 */
export function chooseCandidate(passing: readonly PassingCandidate[]): PassingCandidate | null {
  if (passing.length === 0) return null;
  const simplest = [...passing].sort((a, b) => a.options - b.options || a.geoEstimation - b.geoEstimation)[0];
  const fastest = [...passing].sort((a, b) => a.geoEstimation - b.geoEstimation)[0];
  return fastest.geoEstimation <= simplest.geoEstimation * (1 - BRACKET_RULE.preferSimplerWithin) ? fastest : simplest;
}

/**
 * Session 10's rule for options on top of the default (selection hand-off, deferred index wait;
 * docs/perf.md, Vertical-Slash, session 10; written before its measurement). Those options were worth 1-6 %
 * of the estimation with totals near 1.00, so a pass asks for less on the estimation than BRACKET_RULE but no
 * loss on the total, and each head-count group decides on its own.
 */
export const ON_TOP_RULE = {
  maxDrift: 0.03,
  passEstimation: 0.985,
  passTotal: 1.0,
  failEstimation: 1.01,
  failTotal: 1.01,
  /** A group passes with at most this many invalid cells ... */
  maxInvalid: 1,
  /** ... at least this many passing ones ... */
  minPasses: 2,
  /** ... and the geometric mean of its valid cells' total ratios at most this. */
  maxGeoTotal: 1.0,
  /** Between passing candidates the one with more options wins only this far below (geometric-mean totals). */
  preferSimplerWithin: 0.005,
} as const;

/**
 * A head-count group under ON_TOP_RULE: no cell FAILED or fails, at most maxInvalid invalid, at least
 * minPasses pass, and the geometric mean of the valid cells' total ratios (null: no valid cell) at most
 * maxGeoTotal.
 */
export function onTopGroupPasses(c: StatusCount, geoValidTotal: number | null): boolean {
  return c.FAILED === 0 && c.fail === 0 && c.invalid <= ON_TOP_RULE.maxInvalid && c.pass >= ON_TOP_RULE.minPasses &&
    geoValidTotal !== null && geoValidTotal <= ON_TOP_RULE.maxGeoTotal;
}

export interface PassingOnTop { label: string; options: number; geoTotal: number }

/**
 * Among candidates that passed a group under ON_TOP_RULE: the fewest options (ties: the lower
 * geometric-mean total), unless another's geometric-mean total is at least preferSimplerWithin below that
 * one's (then the lowest total). null when none passed.
 */
export function chooseOnTop(passing: readonly PassingOnTop[]): PassingOnTop | null {
  if (passing.length === 0) return null;
  const simplest = [...passing].sort((a, b) => a.options - b.options || a.geoTotal - b.geoTotal)[0];
  const fastest = [...passing].sort((a, b) => a.geoTotal - b.geoTotal)[0];
  return fastest.geoTotal <= simplest.geoTotal * (1 - ON_TOP_RULE.preferSimplerWithin) ? fastest : simplest;
}
