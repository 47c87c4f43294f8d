/**
 * Dense causal attention: the baseline every method is compared with, and the method the engine
 * runs in the phase a sparse method does not cover.
 */
import {
  type AttentionShape, type DecodeAttention, type DecodeCall, type HeadCounts, type PrefillAttention,
  type PrefillCall, denseKeyCount, emptyCounts,
} from '../engine/attention.js';
import { ScoreScratch, attendRowList, attendRowRange } from '../backends/cpu/attention-kernels.js';
import type { LayerKvCache } from '../engine/kv-cache.js';
import type { MethodDescriptor } from './types.js';

/**
 * Rows of a KV head that a query at `position` sees under dense causal attention, when the head's
 * rows are still in position order (no eviction): [lo, hi).
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
  private scratch = new ScoreScratch();

  prefill(call: PrefillCall): HeadCounts {
    const { shape, queries, numQueries, queryStart, cache, out } = call;
    const { numHeads: H, headDim: D } = shape;
    const g = H / shape.numKvHeads;
    const counts = emptyCounts(H);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / g);
      for (let t = 0; t < numQueries; t++) {
        const p = queryStart + t;
        const [lo, hi] = causalRowRange(cache, kvh, p, shape.slidingWindow);
        const off = (t * H + h) * D;
        attendRowRange(queries, off, cache.keys[kvh], cache.values[kvh], D, lo, hi, shape.scale, shape.logitSoftcap, out, off, this.scratch);
        counts.attended[h] += hi - lo;
        counts.dense[h] += denseKeyCount(p, shape.slidingWindow);
      }
    }
    return counts;
  }
}

/** Rows of one KV head visible to a decode query under dense attention (any eviction respected). */
export function visibleRows(cache: LayerKvCache, head: number, position: number, shape: AttentionShape): Int32Array {
  const len = cache.lengths[head];
  const pos = cache.positions[head];
  const minPos = shape.slidingWindow === null ? -Infinity : position - shape.slidingWindow + 1;
  const rows = new Int32Array(len);
  let n = 0;
  for (let r = 0; r < len; r++) if (pos[r] <= position && pos[r] >= minPos) rows[n++] = r;
  return rows.subarray(0, n);
}

export class DenseDecode implements DecodeAttention {
  readonly id = 'dense';
  readonly observationWindow = 0;
  private scratch = new ScoreScratch();

  decode(call: DecodeCall): HeadCounts {
    const { shape, query, position, cache, out } = call;
    const { numHeads: H, headDim: D } = shape;
    const g = H / shape.numKvHeads;
    const counts = emptyCounts(H);
    for (let kvh = 0; kvh < shape.numKvHeads; kvh++) {
      const rows = visibleRows(cache, kvh, position, shape);
      for (let j = 0; j < g; j++) {
        const h = kvh * g + j;
        attendRowList(query, h * D, cache.keys[kvh], cache.values[kvh], D, rows, rows.length, shape.scale, shape.logitSoftcap, out, h * D, this.scratch);
        counts.attended[h] = rows.length;
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
