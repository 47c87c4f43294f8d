/**
 * SnapKV: after a dense prefill, the last W = 256 prompt queries (the observation window) score all
 * prompt keys; per KV head the importance of a key is the softmax weight averaged over the group's
 * query heads and summed over the window, smoothed by an average pool (kernel 21). The first 4 and
 * the last 128 prompt tokens are always kept; each KV head keeps its top `capacity` prompt tokens and
 * evicts the rest. Generated tokens are appended after the kept ones and always read.
 *
 * Budget: capacity = round((1 - s) n) for a prompt of n tokens (or the original's `tokenCapacity`),
 * never below the forced tokens. A decode step reads capacity + generated tokens, so its achieved
 * sparsity drifts down slowly as the answer grows (the original reports 1 - capacity / n).
 */
import type { CompressCall } from '../engine/attention.js';
import { IndexScratch, rankDescending, sortAscending } from './select.js';
import {
  EvictedCacheDecode, type SnapKvSettings, averagePool, capacityFor, forceKeep, forcedTokens, parseSnapKv, snapKvParams,
  windowEstimateFlops, windowImportance,
} from './snapkv-importance.js';
import type { BudgetDescription, MethodDescriptor } from './types.js';

export class SnapKvDecode extends EvictedCacheDecode {
  readonly id = 'snapkv';
  private rank = new IndexScratch();

  afterPrefill(call: CompressCall): void {
    const n = call.windowStart + call.windowLength;
    const capacity = capacityFor(this.settings, n);
    const importance = windowImportance(call, 'mean');
    const kept: number[] = [];
    for (let kvh = 0; kvh < call.shape.numKvHeads; kvh++) {
      const imp = importance[kvh];
      averagePool(imp, this.settings.kernelSize);
      forceKeep(imp, this.settings);
      if (capacity < n) {
        const order = rankDescending(imp, n, this.rank);
        const rows = Int32Array.from(order.subarray(0, capacity));
        sortAscending(rows, capacity);
        call.cache.retainRows(kvh, rows);
      }
      kept.push(Math.min(capacity, n));
    }
    const wanted = this.settings.tokenCapacity ?? Math.round((1 - (this.settings.sparsity ?? 0)) * n);
    const note = capacity > wanted ? `the ${forcedTokens(this.settings, n)} forced prefix and local tokens exceed the capacity ${wanted} at n=${n}` : undefined;
    this.record(call, kept, { capacity, observationWindow: call.windowLength }, note);
  }
}

export function describeSnapKvBudget(settings: SnapKvSettings, n: number): BudgetDescription {
  const capacity = capacityFor(settings, n);
  const wanted = settings.tokenCapacity ?? Math.round((1 - (settings.sparsity ?? 0)) * n);
  // The first generated token (position n) reads the kept prompt rows plus itself.
  const expected = 1 - (capacity + 1) / (n + 1);
  const desc: BudgetDescription = {
    requested: settings.sparsity,
    counts: { capacity, forced: forcedTokens(settings, n), observationWindow: Math.min(settings.observationWindow, n) },
    expectedSparsity: expected,
    tolerance: 1e-9,
    // Capacity rounds to whole tokens, and the first step also reads the new token itself.
    resolution: 1.5 / (n + 1) + 1e-9,
  };
  if (capacity > wanted) desc.note = `the ${forcedTokens(settings, n)} forced prefix and local tokens exceed the capacity ${wanted} at n=${n}`;
  return desc;
}

export const snapKvMethod: MethodDescriptor = {
  id: 'snapkv',
  title: 'SnapKV',
  phase: 'decode',
  taxonomy: { unit: 'tokens', importance: 'observation window (mean)', budget: 'uniform', kvCache: 'evicted after prefill' },
  summary: 'after prefill, keeps per KV head the prompt tokens the last queries attend most (pooled), evicting the rest',
  params: snapKvParams,
  budgetParams: ['tokenCapacity'],
  create(options) {
    return { decode: new SnapKvDecode(parseSnapKv('snapkv', options)) };
  },
  estimationFlops(shape, n, params) {
    const W = Number(params.observationWindow);
    return { atPrefill: windowEstimateFlops(shape.numHeads, shape.numKvHeads, shape.headDim, n, W), perDecodeToken: 0 };
  },
  describeBudget(n, options) {
    return describeSnapKvBudget(parseSnapKv('snapkv', options), n);
  },
};
