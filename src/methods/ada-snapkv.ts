/**
 * Ada-SnapKV: SnapKV with a budget shared across the KV heads of a layer. Importance is the max over
 * window queries and over the group's query heads (then pooled and forced as in SnapKV). Each KV head
 * first keeps its top max(floor(0.2 capacity), prefix + local) tokens; the rest of the layer budget
 * (Hkv x capacity minus those) goes to the highest remaining scores across all KV heads, so heads end
 * with different counts that sum to the layer budget.
 */
import type { CompressCall } from '../engine/attention.js';
import { IndexScratch, rankDescending, sortAscending } from './select.js';
import {
  EvictedCacheDecode, type SnapKvSettings, averagePool, capacityFor, forceKeep, forcedTokens, parseSnapKv, snapKvParams,
  windowEstimateFlops, windowImportance,
} from './snapkv-importance.js';
import { describeSnapKvBudget } from './snapkv.js';
import type { MethodDescriptor } from './types.js';

/** Tokens every KV head keeps before the shared pool is spread. */
export function minimumPerHead(settings: SnapKvSettings, capacity: number, ratio: number, n: number): number {
  return Math.min(n, Math.max(Math.floor(capacity * ratio), forcedTokens(settings, n)));
}

/**
 * Choose the kept rows of every KV head from importance [Hkv][n]: returns ascending row lists whose
 * lengths sum to Hkv x capacity (or Hkv x minimum when the minimum exceeds the capacity).
 */
export function adaptiveSelection(importance: Float64Array[], capacity: number, minimum: number, rank: IndexScratch): Int32Array[] {
  const Hkv = importance.length;
  const n = importance[0].length;
  const keep = importance.map(() => new Uint8Array(n));
  for (let h = 0; h < Hkv; h++) {
    const order = rankDescending(importance[h], n, rank);
    for (let i = 0; i < minimum; i++) keep[h][order[i]] = 1;
  }
  const remaining = Math.max(0, Hkv * capacity - Hkv * minimum);
  if (remaining > 0) {
    // All heads' leftover scores in one list; ties: lower head, then lower position.
    const flat = new Float64Array(Hkv * n);
    for (let h = 0; h < Hkv; h++) for (let j = 0; j < n; j++) flat[h * n + j] = keep[h][j] ? -Infinity : importance[h][j];
    const order = rankDescending(flat, Hkv * n, rank);
    for (let i = 0; i < remaining; i++) {
      const f = order[i];
      keep[Math.floor(f / n)][f % n] = 1;
    }
  }
  return keep.map((mask) => {
    let count = 0;
    for (let j = 0; j < n; j++) count += mask[j];
    const rows = new Int32Array(count);
    let c = 0;
    for (let j = 0; j < n; j++) if (mask[j]) rows[c++] = j;
    return rows;
  });
}

export class AdaSnapKvDecode extends EvictedCacheDecode {
  readonly id = 'ada_snapkv';
  private rank = new IndexScratch();

  constructor(settings: SnapKvSettings, readonly minHeadCapacityRatio: number) {
    super(settings);
  }

  afterPrefill(call: CompressCall): void {
    const n = call.windowStart + call.windowLength;
    const capacity = capacityFor(this.settings, n);
    const minimum = minimumPerHead(this.settings, capacity, this.minHeadCapacityRatio, n);
    const importance = windowImportance(call, 'max');
    for (const imp of importance) {
      averagePool(imp, this.settings.kernelSize);
      forceKeep(imp, this.settings);
    }
    const kept: number[] = [];
    if (capacity >= n) {
      for (let kvh = 0; kvh < importance.length; kvh++) kept.push(n);
    } else {
      const rows = adaptiveSelection(importance, capacity, minimum, this.rank);
      for (let kvh = 0; kvh < rows.length; kvh++) {
        sortAscending(rows[kvh], rows[kvh].length);
        call.cache.retainRows(kvh, rows[kvh]);
        kept.push(rows[kvh].length);
      }
    }
    const wanted = this.settings.tokenCapacity ?? Math.round((1 - (this.settings.sparsity ?? 0)) * n);
    const note = capacity > wanted || minimum > capacity
      ? `the forced per-head minimum (${minimum} tokens: prefix, local window, ${this.minHeadCapacityRatio} x capacity) exceeds the capacity ${wanted} at n=${n}`
      : undefined;
    this.record(call, kept, { capacity, minimumPerHead: minimum, keptPerHead: kept.join('/') }, note);
  }
}

export const adaSnapKvMethod: MethodDescriptor = {
  id: 'ada_snapkv',
  title: 'Ada-SnapKV',
  phase: 'decode',
  taxonomy: { unit: 'tokens', importance: 'observation window (max)', budget: 'adaptive across heads', kvCache: 'evicted after prefill' },
  summary: 'SnapKV with max-pooled importance and a layer budget spread across KV heads by score',
  params: [
    ...snapKvParams,
    { name: 'minHeadCapacityRatio', kind: 'number', default: 0.2, min: 0, max: 1, description: 'share of the capacity every KV head keeps first' },
  ],
  budgetParams: ['tokenCapacity'],
  create(options) {
    const ratio = options.params.minHeadCapacityRatio as number;
    return { decode: new AdaSnapKvDecode(parseSnapKv('ada_snapkv', options), ratio) };
  },
  estimationFlops(shape, n, params) {
    const W = Number(params.observationWindow);
    return { atPrefill: windowEstimateFlops(shape.numHeads, shape.numKvHeads, shape.headDim, n, W), perDecodeToken: 0 };
  },
  describeBudget(n, options) {
    const settings = parseSnapKv('ada_snapkv', options);
    const desc = describeSnapKvBudget(settings, n);
    const capacity = capacityFor(settings, n);
    const minimum = minimumPerHead(settings, capacity, options.params.minHeadCapacityRatio as number, n);
    desc.counts.minimumPerHead = minimum;
    if (minimum > capacity) {
      desc.expectedSparsity = 1 - (minimum + 1) / (n + 1);
      desc.note = `every KV head keeps at least ${minimum} tokens, more than the capacity ${capacity} at n=${n}`;
    }
    return desc;
  },
};
