/**
 * Everything the engine keeps per sequence between forward calls: the KV cache, the attended-pair
 * counts the attention methods reported (the measured sparsity), and the trailing prompt queries that
 * decode methods with an observation window (SnapKV) need once the prompt is in.
 */
import type { HeadCounts } from './attention.js';
import { KvCache } from './kv-cache.js';

/** Attended and dense-causal (query, key) pair counts, [L, H] layer-major. */
export interface PhaseCounts {
  attended: Float64Array;
  dense: Float64Array;
}

export interface AttentionCounts {
  numLayers: number;
  numHeads: number;
  prefill: PhaseCounts;
  decode: PhaseCounts;
}

export function emptyAttentionCounts(numLayers: number, numHeads: number): AttentionCounts {
  const phase = (): PhaseCounts => ({
    attended: new Float64Array(numLayers * numHeads),
    dense: new Float64Array(numLayers * numHeads),
  });
  return { numLayers, numHeads, prefill: phase(), decode: phase() };
}

/** Add one method call's per-head counts into layer `layer` of a phase. */
export function addHeadCounts(into: PhaseCounts, layer: number, numHeads: number, c: HeadCounts): void {
  const off = layer * numHeads;
  for (let h = 0; h < numHeads; h++) {
    into.attended[off + h] += c.attended[h];
    into.dense[off + h] += c.dense[h];
  }
}

/** Achieved sparsity 1 − attended/dense over the selected entries (all layers and heads by default). */
export function achievedSparsity(p: PhaseCounts, layers?: readonly number[], numHeads?: number): number {
  let att = 0, dense = 0;
  if (layers && numHeads !== undefined) {
    for (const l of layers) {
      for (let h = 0; h < numHeads; h++) {
        att += p.attended[l * numHeads + h];
        dense += p.dense[l * numHeads + h];
      }
    }
  } else {
    for (let i = 0; i < p.attended.length; i++) {
      att += p.attended[i];
      dense += p.dense[i];
    }
  }
  return dense === 0 ? 0 : 1 - att / dense;
}

/**
 * The last `capacity` rotated queries of one layer, [≤capacity, H, D] token-major, kept across prefill
 * chunks.
 */
export class QueryWindow {
  private buf: Float32Array;
  length = 0; // tokens held
  /** Absolute position of the first held query. */
  start = 0;

  constructor(readonly capacity: number, private readonly rowSize: number) {
    this.buf = new Float32Array(capacity * rowSize);
  }

  /** Append T query rows ([T, H, D]) whose first is at absolute position `position`. */
  push(q: Float32Array, numTokens: number, position: number): void {
    if (this.capacity === 0) return;
    const R = this.rowSize;
    const keepNew = Math.min(numTokens, this.capacity);
    const keepOld = Math.min(this.length, this.capacity - keepNew);
    // Slide the newest `keepOld` old rows to the front, then copy the new rows after them.
    this.buf.copyWithin(0, (this.length - keepOld) * R, this.length * R);
    this.buf.set(q.subarray((numTokens - keepNew) * R, numTokens * R), keepOld * R);
    this.length = keepOld + keepNew;
    this.start = position + numTokens - this.length;
  }

  /** [length, H, D] view of the held queries. */
  view(): Float32Array {
    return this.buf.subarray(0, this.length * this.rowSize);
  }
}

export class SequenceState {
  readonly cache: KvCache;
  readonly counts: AttentionCounts;
  /** Per layer; null for layers whose decode method needs no window (or sliding layers). */
  readonly windows: (QueryWindow | null)[];
  /** True once the prompt is complete and the decode method's afterPrefill hook has run. */
  prefillDone = false;

  constructor(numLayers: number, numHeads: number, numKvHeads: number, headDim: number, windowLayers: boolean[], observationWindow: number) {
    this.cache = new KvCache(numLayers, numKvHeads, headDim);
    this.counts = emptyAttentionCounts(numLayers, numHeads);
    this.windows = windowLayers.map((on) => (on && observationWindow > 0 ? new QueryWindow(observationWindow, numHeads * headDim) : null));
  }

  get position(): number {
    return this.cache.nextPosition;
  }
}
