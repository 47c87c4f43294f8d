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

  /** Which layers keep a query window (full-attention layers), as given to the constructor. */
  private readonly windowLayers: boolean[];

  constructor(
    numLayers: number, numHeads: number, numKvHeads: number, headDim: number, windowLayers: boolean[], observationWindow: number,
    /** An existing cache to continue from (fork); a fresh empty one by default. */
    cache?: KvCache,
  ) {
    this.cache = cache ?? new KvCache(numLayers, numKvHeads, headDim);
    this.counts = emptyAttentionCounts(numLayers, numHeads);
    this.windowLayers = [...windowLayers];
    this.windows = windowLayers.map((on) => (on && observationWindow > 0 ? new QueryWindow(observationWindow, numHeads * headDim) : null));
  }

  /**
   * A copy of this prompt-complete sequence for another decode method, as if that method's own
   * prefill had run: a deep copy of the cache, the prefill counts, and the last `observationWindow`
   * prompt queries per layer (this sequence's windows must be at least that long). The copy has not
   * run any afterPrefill hook yet (prefillDone false): the caller runs the new method's hook. Only a
   * sequence whose prefill left no method state in the cache (a dense prefill with a hook-less
   * decode method) can be forked.
   */
  fork(observationWindow: number): SequenceState {
    if (!this.prefillDone) throw new Error('SequenceState.fork: the prompt is not complete yet');
    const { numLayers, numHeads } = this.counts;
    const first = this.cache.layers[0];
    for (const w of this.windows) {
      if (observationWindow > 0 && w && w.capacity < observationWindow) {
        throw new Error(`SequenceState.fork: this sequence keeps ${w.capacity} prompt queries, the fork needs ${observationWindow}`);
      }
    }
    if (observationWindow > 0 && this.windowLayers.some((on, l) => on && !this.windows[l])) {
      throw new Error('SequenceState.fork: this sequence kept no prompt queries, the fork needs an observation window');
    }
    const copy = new SequenceState(
      numLayers, numHeads, first?.numKvHeads ?? 0, first?.headDim ?? 0, this.windowLayers, observationWindow, this.cache.clone(),
    );
    copy.counts.prefill.attended.set(this.counts.prefill.attended);
    copy.counts.prefill.dense.set(this.counts.prefill.dense);
    copy.counts.decode.attended.set(this.counts.decode.attended);
    copy.counts.decode.dense.set(this.counts.decode.dense);
    this.windows.forEach((w, l) => {
      const target = copy.windows[l];
      if (w && target) target.push(w.view(), w.length, w.start);
    });
    return copy;
  }

  get position(): number {
    return this.cache.nextPosition;
  }
}
