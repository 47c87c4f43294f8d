/**
 * Sink + local (StreamingLLM-style; our addition to the paper's set). A query at position p attends
 * the first `sinkTokens` keys and a local window of the most recent keys, itself included.
 *
 * Budget: with an explicit `localWindow` the window is fixed (StreamingLLM). With a target sparsity s
 * the query at p attends k(p) = round((1 - s)(p + 1)) keys (never fewer than the sinks plus itself),
 * so every query, prompt or generated, keeps the same fraction of its causal keys. That rule needs no
 * prompt length, so the prefill variant works with chunked prefill, and the decode variant can evict:
 * the window start never moves backwards, so an evicted key is never needed again.
 *
 * Registered twice (one entry per phase), because the study measures each phase on its own.
 */
import {
  type DecodeAttention, type DecodeCall, type HeadCounts, type PrefillAttention, type PrefillCall, emptyCounts,
} from '../engine/attention.js';
import type { LayerKvCache } from '../engine/kv-cache.js';
import { RangeList, SparseAttentionScratch, attendSparseRows } from '../backends/cpu/sparse-attention.js';
import { assertFullAttentionLayer, boolParam, causalPairs, intParam, optionalIntParam } from './options.js';
import type { BudgetDescription, MethodDescriptor, ParamSpec, ResolvedOptions } from './types.js';

export interface SinkLocalRule {
  sinkTokens: number;
  /** Fixed window (StreamingLLM) or null: the window follows the target sparsity. */
  localWindow: number | null;
  sparsity: number | null;
}

/**
 * Keys a query at position p attends: [0, sinkEnd) and [localStart, p + 1), disjoint.
 * Writes into[0] = sinkEnd, into[1] = localStart (no allocation: called once per query).
 */
export function sinkLocalKeys(p: number, rule: SinkLocalRule, into: Int32Array): void {
  const visible = p + 1;
  const sinkEnd = Math.min(rule.sinkTokens, visible);
  let keep: number;
  if (rule.localWindow !== null) {
    keep = sinkEnd + Math.min(rule.localWindow, visible - sinkEnd);
  } else {
    const s = rule.sparsity ?? 0;
    const forced = Math.min(visible, rule.sinkTokens + 1);
    keep = Math.min(visible, Math.max(forced, Math.round((1 - s) * visible)));
  }
  into[0] = sinkEnd;
  into[1] = visible - (keep - sinkEnd);
}

function ruleFrom(options: ResolvedOptions): SinkLocalRule {
  const localWindow = optionalIntParam(options.params, 'localWindow');
  return { sinkTokens: intParam(options.params, 'sinkTokens'), localWindow, sparsity: options.sparsity };
}

/** Attended and dense causal pairs of one head for queries queryStart .. queryStart + T - 1. */
export function sinkLocalPairs(rule: SinkLocalRule, queryStart: number, T: number): { attended: number; dense: number } {
  const keys = new Int32Array(2);
  let attended = 0, dense = 0;
  for (let p = queryStart; p < queryStart + T; p++) {
    sinkLocalKeys(p, rule, keys);
    attended += keys[0] + (p + 1 - keys[1]);
    dense += p + 1;
  }
  return { attended, dense };
}

/** Number of keys the query at p attends. */
function keptAt(p: number, rule: SinkLocalRule, tmp: Int32Array): number {
  sinkLocalKeys(p, rule, tmp);
  return tmp[0] + (p + 1 - tmp[1]);
}

/** The prompt's rows must be positions 0..len-1 (no eviction yet): true for any prefill. */
function assertUnevicted(id: string, cache: LayerKvCache, expectedLength: number): void {
  for (let h = 0; h < cache.numKvHeads; h++) {
    if (cache.lengths[h] !== expectedLength || cache.positions[h][expectedLength - 1] !== expectedLength - 1) {
      throw new Error(`${id}: prefill expects the cache to hold positions 0..${expectedLength - 1} in order`);
    }
  }
}

export class SinkLocalPrefill implements PrefillAttention {
  readonly id = 'sink_local_prefill';
  readonly requiresWholePrompt = false;
  private scratch = new SparseAttentionScratch();
  private ranges = new RangeList();
  private keys = new Int32Array(2);
  constructor(readonly rule: SinkLocalRule) {}

  prefill(call: PrefillCall): HeadCounts {
    const { shape, queries, numQueries, queryStart, cache, out } = call;
    assertFullAttentionLayer(this.id, shape.slidingWindow);
    assertUnevicted(this.id, cache, queryStart + numQueries);
    const { numHeads: H, headDim: D } = shape;
    const g = H / shape.numKvHeads;
    const counts = emptyCounts(H);
    for (let t = 0; t < numQueries; t++) {
      const p = queryStart + t;
      sinkLocalKeys(p, this.rule, this.keys);
      this.ranges.clear();
      this.ranges.push(0, this.keys[0]);
      this.ranges.push(this.keys[1], p + 1);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / g);
        const off = (t * H + h) * D;
        counts.attended[h] += attendSparseRows(
          queries, off, cache.keys[kvh], cache.values[kvh], D, this.ranges.data, this.ranges.count, null, 0,
          shape.scale, shape.logitSoftcap, out, off, this.scratch,
        );
        counts.dense[h] += p + 1;
      }
    }
    return counts;
  }
}

/** First row of a head whose position is >= target (rows are in ascending position order). */
export function firstRowAtOrAfter(positions: Int32Array, length: number, target: number): number {
  let lo = 0, hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (positions[mid] < target) lo = mid + 1; else hi = mid;
  }
  return lo;
}

export class SinkLocalDecode implements DecodeAttention {
  readonly id = 'sink_local_decode';
  readonly observationWindow = 0;
  private scratch = new SparseAttentionScratch();
  private ranges = new RangeList();
  private keys = new Int32Array(2);
  private retained = new Int32Array(256);
  constructor(readonly rule: SinkLocalRule, readonly evict: boolean) {}

  decode(call: DecodeCall): HeadCounts {
    const { shape, query, position, cache, out } = call;
    assertFullAttentionLayer(this.id, shape.slidingWindow);
    const { numHeads: H, headDim: D } = shape;
    const g = H / shape.numKvHeads;
    const counts = emptyCounts(H);
    sinkLocalKeys(position, this.rule, this.keys);
    const [sinkEnd, localStart] = this.keys;
    for (let kvh = 0; kvh < shape.numKvHeads; kvh++) {
      const pos = cache.positions[kvh];
      let len = cache.lengths[kvh];
      if (len === 0 || pos[len - 1] !== position) throw new Error(`${this.id}: the new token at ${position} must be the last cached row`);
      const sinkRows = firstRowAtOrAfter(pos, len, sinkEnd);
      let localRow = firstRowAtOrAfter(pos, len, localStart);
      if (len - localRow !== position + 1 - localStart) {
        throw new Error(`${this.id}: the local window [${localStart}, ${position}] is no longer in the cache`);
      }
      if (this.evict && localRow > sinkRows) {
        // The window start never moves backwards, so the rows between sinks and window are dead.
        const keep = sinkRows + (len - localRow);
        if (this.retained.length < keep) this.retained = new Int32Array(keep * 2);
        for (let r = 0; r < sinkRows; r++) this.retained[r] = r;
        for (let r = localRow; r < len; r++) this.retained[sinkRows + r - localRow] = r;
        cache.retainRows(kvh, this.retained.subarray(0, keep));
        len = keep;
        localRow = sinkRows;
      }
      this.ranges.clear();
      this.ranges.push(0, sinkRows);
      this.ranges.push(localRow, len);
      for (let j = 0; j < g; j++) {
        const h = kvh * g + j;
        counts.attended[h] = attendSparseRows(
          query, h * D, cache.keys[kvh], cache.values[kvh], D, this.ranges.data, this.ranges.count, null, 0,
          shape.scale, shape.logitSoftcap, out, h * D, this.scratch,
        );
        counts.dense[h] = position + 1;
      }
    }
    return counts;
  }
}

const params: ParamSpec[] = [
  { name: 'sinkTokens', kind: 'integer', default: 4, min: 0, description: 'first tokens every query attends (attention sinks)' },
  { name: 'localWindow', kind: 'integer', min: 1, description: 'fixed local window in tokens (StreamingLLM); replaces sparsity' },
];

function describe(rule: SinkLocalRule, n: number, phase: 'prefill' | 'decode', requested: number | null): BudgetDescription {
  const tmp = new Int32Array(2);
  let kept = 0, dense = 0;
  if (phase === 'prefill') {
    for (let p = 0; p < n; p++) kept += keptAt(p, rule, tmp);
    dense = causalPairs(n);
  } else {
    // The first generated token sits at position n.
    kept = keptAt(n, rule, tmp);
    dense = n + 1;
  }
  const expected = 1 - kept / dense;
  const desc: BudgetDescription = {
    requested,
    counts: rule.localWindow !== null
      ? { sinkTokens: rule.sinkTokens, localWindow: rule.localWindow }
      : { sinkTokens: rule.sinkTokens, localWindow: `round((1-s)(p+1)) - ${rule.sinkTokens}` },
    expectedSparsity: expected,
    tolerance: 1e-9,
    // Each query's key count rounds to a whole token.
    resolution: phase === 'prefill' ? 1 / (n + 1) + 1e-9 : 0.5 / (n + 1) + 1e-9,
  };
  if (requested !== null && Math.abs(expected - requested) > desc.resolution) {
    desc.note = `every query keeps its ${rule.sinkTokens} sink tokens and itself, more than the budget for the earliest queries at n=${n}`;
  }
  return desc;
}

function makeDescriptor(phase: 'prefill' | 'decode'): MethodDescriptor {
  const id = phase === 'prefill' ? 'sink_local_prefill' : 'sink_local_decode';
  return {
    id,
    title: `Sink + local (${phase})`,
    phase,
    taxonomy: {
      unit: 'tokens',
      importance: 'fixed pattern',
      budget: 'uniform',
      kvCache: phase === 'prefill' ? 'full' : 'evicting',
    },
    summary: phase === 'prefill'
      ? 'StreamingLLM-style pattern in prefill: sink tokens plus a local window per query'
      : 'StreamingLLM-style decoding: keeps sink tokens plus a local window, evicting the rest',
    params: phase === 'prefill'
      ? params
      : [...params, { name: 'evict', kind: 'boolean', default: true, description: 'drop keys that left the window from the cache' }],
    budgetParams: ['localWindow'],
    create(options) {
      const rule = ruleFrom(options);
      return phase === 'prefill'
        ? { prefill: new SinkLocalPrefill(rule) }
        : { decode: new SinkLocalDecode(rule, boolParam(options.params, 'evict')) };
    },
    estimationFlops() {
      return { atPrefill: 0, perDecodeToken: 0 };
    },
    describeBudget(n, options) {
      return describe(ruleFrom(options), n, phase, options.sparsity);
    },
  };
}

export const sinkLocalPrefillMethod = makeDescriptor('prefill');
export const sinkLocalDecodeMethod = makeDescriptor('decode');
