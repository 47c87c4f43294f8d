/**
 * Shared by SnapKV and Ada-SnapKV: the observation-window importance of every prompt key, the 1-D
 * average pooling, the forced prefix/local tokens, and the decode step over an evicted cache.
 */
import {
  type CompressCall, type DecodeAttention, type DecodeCall, type HeadCounts, emptyCounts,
} from '../engine/attention.js';
import { RangeList, SparseAttentionScratch, attendSparseRows, forEachCausalSoftmaxRow } from '../backends/cpu/sparse-attention.js';
import { assertFullAttentionLayer, intParam, optionalIntParam } from './options.js';
import type { BudgetDecision, ParamSpec, ResolvedOptions } from './types.js';

export interface SnapKvSettings {
  observationWindow: number;
  kernelSize: number;
  localWindow: number;
  prefixTokens: number;
  sparsity: number | null;
  tokenCapacity: number | null;
}

export const snapKvParams: ParamSpec[] = [
  { name: 'tokenCapacity', kind: 'integer', min: 1, originalDefault: 1024, description: 'prompt tokens kept per KV head; replaces sparsity' },
  { name: 'observationWindow', kind: 'integer', default: 256, min: 1, description: 'last prompt queries that score the keys (W)' },
  { name: 'kernelSize', kind: 'integer', default: 21, min: 1, description: 'average-pooling kernel (odd)' },
  { name: 'localWindow', kind: 'integer', default: 128, min: 0, description: 'most recent prompt tokens always kept' },
  { name: 'prefixTokens', kind: 'integer', default: 4, min: 0, description: 'first prompt tokens always kept' },
];

export function parseSnapKv(methodId: string, options: ResolvedOptions): SnapKvSettings {
  const kernelSize = intParam(options.params, 'kernelSize');
  if (kernelSize % 2 === 0) throw new Error(`${methodId}: kernelSize must be odd (same-length pooling), got ${kernelSize}`);
  return {
    observationWindow: intParam(options.params, 'observationWindow'),
    kernelSize,
    localWindow: intParam(options.params, 'localWindow'),
    prefixTokens: intParam(options.params, 'prefixTokens'),
    sparsity: options.sparsity,
    tokenCapacity: optionalIntParam(options.params, 'tokenCapacity'),
  };
}

/** Tokens forced into the cache of a prompt of n tokens (prefix and local window). */
export function forcedTokens(settings: SnapKvSettings, n: number): number {
  return Math.min(n, settings.prefixTokens + settings.localWindow);
}

/** Prompt tokens kept per KV head: the capacity, never below the forced tokens, never above n. */
export function capacityFor(settings: SnapKvSettings, n: number): number {
  const wanted = settings.tokenCapacity ?? Math.round((1 - (settings.sparsity ?? 0)) * n);
  return Math.min(n, Math.max(wanted, forcedTokens(settings, n)));
}

/**
 * Importance of every prompt key per KV head, [Hkv][n]: softmax weights of the W window queries
 * (causal inside the window). 'mean': mean over the group's query heads, summed over the window
 * (SnapKV); 'max': max over window queries and over the group's heads (Ada-SnapKV).
 */
export function windowImportance(call: CompressCall, mode: 'mean' | 'max'): Float64Array[] {
  const { shape, windowQueries, windowLength: W, windowStart, cache } = call;
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
  const g = H / Hkv;
  const n = windowStart + W;
  for (let kvh = 0; kvh < Hkv; kvh++) {
    if (cache.lengths[kvh] !== n) throw new Error(`snapkv: cache holds ${cache.lengths[kvh]} rows, expected the ${n}-token prompt`);
  }
  const importance = Array.from({ length: Hkv }, () => new Float64Array(n));
  const rows = [new Float64Array(n), new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  for (let h = 0; h < H; h++) {
    const kvh = Math.floor(h / g);
    const imp = importance[kvh];
    forEachCausalSoftmaxRow(windowQueries, 0, windowStart, W, H, h, D, cache.keys[kvh], shape.scale, shape.logitSoftcap, rows, (row, p) => {
      if (mode === 'mean') {
        for (let j = 0; j <= p; j++) imp[j] += row[j] / g;
      } else {
        for (let j = 0; j <= p; j++) if (row[j] > imp[j]) imp[j] = row[j];
      }
    });
  }
  return importance;
}

/**
 * avg_pool1d with stride 1 and zero padding K // 2 counted in the average (divides by K everywhere),
 * for odd K: out[j] = sum(x[j - K/2 .. j + K/2]) / K. In place, [n].
 */
export function averagePool(x: Float64Array, kernelSize: number): void {
  const n = x.length, half = kernelSize >> 1;
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i] + x[i];
  for (let j = 0; j < n; j++) {
    const lo = Math.max(0, j - half), hi = Math.min(n, j + half + 1);
    x[j] = (prefix[hi] - prefix[lo]) / kernelSize;
  }
}

/** Set the forced tokens (last localWindow, first prefixTokens) to +Infinity. */
export function forceKeep(x: Float64Array, settings: SnapKvSettings): void {
  const n = x.length;
  for (let j = Math.max(0, n - settings.localWindow); j < n; j++) x[j] = Infinity;
  for (let j = 0; j < Math.min(n, settings.prefixTokens); j++) x[j] = Infinity;
}

/** Marker stored in cache.methodState after eviction, so decode can check the hook ran. */
export interface EvictionRecord {
  promptLength: number;
  keptPerHead: number[];
}

/**
 * Decode over a cache whose prompt rows were evicted after prefill: every cached row is read
 * (kept prompt tokens plus generated ones). Subclasses do the eviction in afterPrefill.
 */
export abstract class EvictedCacheDecode implements DecodeAttention {
  abstract readonly id: string;
  readonly lastDecisions = new Map<number, BudgetDecision>();
  private scratch = new SparseAttentionScratch();
  private ranges = new RangeList();

  constructor(readonly settings: SnapKvSettings) {}

  get observationWindow(): number {
    return this.settings.observationWindow;
  }

  abstract afterPrefill(call: CompressCall): void;

  protected record(call: CompressCall, kept: number[], counts: Record<string, number | string>, note?: string): void {
    const n = call.windowStart + call.windowLength;
    const rec: EvictionRecord = { promptLength: n, keptPerHead: kept };
    call.cache.methodState.set(this.id, rec);
    this.lastDecisions.set(call.layer, { layer: call.layer, counts, ...(note ? { note } : {}) });
  }

  decode(call: DecodeCall): HeadCounts {
    const { shape, query, position, cache, out } = call;
    assertFullAttentionLayer(this.id, shape.slidingWindow);
    if (!cache.methodState.has(this.id)) {
      throw new Error(`${this.id}: decode before afterPrefill: the engine must call afterPrefill with the observation window`);
    }
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    const g = H / Hkv;
    const counts = emptyCounts(H);
    for (let kvh = 0; kvh < Hkv; kvh++) {
      const len = cache.lengths[kvh];
      if (len === 0 || cache.positions[kvh][len - 1] !== position) {
        throw new Error(`${this.id}: the new token at ${position} must be the last cached row`);
      }
      this.ranges.clear();
      this.ranges.push(0, len);
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

/** FLOPs of the window estimate at prompt length n: scores, softmax, group reduction, pooling. */
export function windowEstimateFlops(numHeads: number, numKvHeads: number, headDim: number, n: number, W: number): number {
  const w = Math.min(W, n);
  const pairs = w * n - (w * (w - 1)) / 2;
  return numHeads * pairs * (2 * headDim + 6) + 2 * numKvHeads * n;
}
