/**
 * Dense causal attention: the baseline every method is compared with, and the method the engine
 * runs in the phase a sparse method does not cover.
 */
import {
  type DecodeAttention, type DecodeCall, type HeadCounts, type PrefillAttention,
  type PrefillCall, denseKeyCount, emptyCounts,
} from '../engine/attention.js';
import { QueryRunScratch, SparseAttentionScratch, attendQueryRun, attendSparseRows } from '../backends/cpu/sparse-attention.js';
import type { LayerKvCache } from '../engine/kv-cache.js';
import type { MethodDescriptor } from './types.js';

/**
 * Rows of a KV head that a query at `position` sees under dense causal attention: [lo, hi). Rows are
 * always in ascending position order (appends are, and eviction keeps the order), so the visible
 * rows are contiguous even after a method evicted some.
 */
function causalRowRange(cache: LayerKvCache, head: number, position: number, window: number | null): [number, number] {
  const pos = cache.positions[head];
  const len = cache.lengths[head];
  // Rows are appended in position order, so binary search for the first row past `position`.
  let lo = 0, hi = len;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pos[mid] <= position) lo = mid + 1; else hi = mid;
  }
  const end = lo;
  let start = 0;
  if (window !== null) {
    const minPos = position - window + 1;
    let a = 0, b = end;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (pos[mid] < minPos) a = mid + 1; else b = mid;
    }
    start = a;
  }
  return [start, end];
}

export class DensePrefill implements PrefillAttention {
  readonly id = 'dense';
  readonly requiresWholePrompt = false;
  private scratch = new SparseAttentionScratch();
  private run = new QueryRunScratch();
  private range = new Int32Array(2);

  prefill(call: PrefillCall): HeadCounts {
    const { shape, queries, numQueries, queryStart, cache, out } = call;
    const { numHeads: H, headDim: D } = shape;
    const g = H / shape.numKvHeads;
    const counts = emptyCounts(H);
    const end = queryStart + numQueries;
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / g);
      for (let t = 0; t < numQueries; t++) counts.dense[h] += denseKeyCount(queryStart + t, shape.slidingWindow);
      if (cache.lengths[kvh] === end && cache.positions[kvh][end - 1] === end - 1) {
        // Rows are positions: the whole chunk shares one row range, four queries at a time.
        const lo = shape.slidingWindow === null ? 0 : Math.max(0, queryStart - shape.slidingWindow + 1);
        this.range[0] = lo;
        this.range[1] = end;
        counts.attended[h] += attendQueryRun(
          queries, out, H, h, D, 0, numQueries, queryStart, shape.slidingWindow, cache.keys[kvh], cache.values[kvh],
          this.range, 1, null, 0, shape.scale, shape.logitSoftcap, this.run,
        );
        continue;
      }
      for (let t = 0; t < numQueries; t++) {
        const p = queryStart + t;
        const [lo, hi] = causalRowRange(cache, kvh, p, shape.slidingWindow);
        const off = (t * H + h) * D;
        this.range[0] = lo;
        this.range[1] = hi;
        counts.attended[h] += attendSparseRows(
          queries, off, cache.keys[kvh], cache.values[kvh], D, this.range, 1, null, 0, shape.scale, shape.logitSoftcap, out, off, this.scratch,
        );
      }
    }
    return counts;
  }
}

export class DenseDecode implements DecodeAttention {
  readonly id = 'dense';
  readonly observationWindow = 0;
  private scratch = new SparseAttentionScratch();
  private range = new Int32Array(2);

  decode(call: DecodeCall): HeadCounts {
    const { shape, query, position, cache, out } = call;
    const { numHeads: H, headDim: D } = shape;
    const g = H / shape.numKvHeads;
    const counts = emptyCounts(H);
    for (let kvh = 0; kvh < shape.numKvHeads; kvh++) {
      const [lo, hi] = causalRowRange(cache, kvh, position, shape.slidingWindow);
      this.range[0] = lo;
      this.range[1] = hi;
      for (let j = 0; j < g; j++) {
        const h = kvh * g + j;
        counts.attended[h] = attendSparseRows(
          query, h * D, cache.keys[kvh], cache.values[kvh], D, this.range, 1, null, 0, shape.scale, shape.logitSoftcap, out, h * D, this.scratch,
        );
        counts.dense[h] = denseKeyCount(position, shape.slidingWindow);
      }
    }
    return counts;
  }
}

export function densePlan(): { prefill: DensePrefill; decode: DenseDecode } {
  return { prefill: new DensePrefill(), decode: new DenseDecode() };
}

/** Registry entry: dense attention in both phases (sparsity 0, no parameters). */
export const denseMethod: MethodDescriptor = {
  id: 'dense',
  title: 'Dense',
  phase: 'both',
  taxonomy: { unit: 'none', importance: 'none', budget: 'all', kvCache: 'full' },
  summary: 'full causal attention: the baseline every method is compared with',
  params: [],
  budgetParams: [],
  create(options) {
    if (options.sparsity !== null && options.sparsity !== 0) {
      throw new Error(`dense: sparsity must be 0 (got ${options.sparsity})`);
    }
    return densePlan();
  },
  estimationFlops() {
    return { atPrefill: 0, perDecodeToken: 0 };
  },
  describeBudget(_n, options) {
    return { requested: options.sparsity, counts: {}, expectedSparsity: 0, tolerance: 0, resolution: 0 };
  },
};
