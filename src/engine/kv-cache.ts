/**
 * KV cache of one layer of one sequence, laid out per KV head so that each head's keys are contiguous
 * (the attention loops scan them linearly) and so that each head can hold a different set of rows
 * after eviction (SnapKV, Ada-SnapKV keep per-head token lists).
 *
 * Row r of head h: key keys[h][r*D .. r*D+D), value values[h][r*D ..), absolute position positions[h][r].
 * Keys are stored after RoPE (and after q/k norm), exactly what attention consumes.
 */
export class LayerKvCache {
  readonly numKvHeads: number;
  readonly headDim: number;
  keys: Float32Array[];
  values: Float32Array[];
  positions: Int32Array[];
  /** Rows per KV head; equal across heads until a method evicts. */
  lengths: number[];
  /** Rows a head can hold before its buffers grow. */
  private capacity: number[];
  /**
   * Per-layer state a decode method keeps with the cache (Quest's page bounds, for example).
   * Keyed by method id so two methods never read each other's state.
   */
  readonly methodState = new Map<string, unknown>();

  constructor(numKvHeads: number, headDim: number, initialCapacity = 256) {
    this.numKvHeads = numKvHeads;
    this.headDim = headDim;
    const cap = Math.max(1, initialCapacity);
    this.keys = Array.from({ length: numKvHeads }, () => new Float32Array(cap * headDim));
    this.values = Array.from({ length: numKvHeads }, () => new Float32Array(cap * headDim));
    this.positions = Array.from({ length: numKvHeads }, () => new Int32Array(cap));
    this.lengths = new Array<number>(numKvHeads).fill(0);
    this.capacity = new Array<number>(numKvHeads).fill(cap);
  }

  /** Rows held by head 0 (all heads hold the same count unless a method evicted). */
  get length(): number {
    return this.lengths[0] ?? 0;
  }

  /** Largest row count over heads. */
  get maxLength(): number {
    return Math.max(0, ...this.lengths);
  }

  private ensureCapacity(head: number, rows: number): void {
    if (rows <= this.capacity[head]) return;
    let cap = this.capacity[head];
    while (cap < rows) cap *= 2;
    const D = this.headDim;
    const k = new Float32Array(cap * D);
    k.set(this.keys[head].subarray(0, this.lengths[head] * D));
    const v = new Float32Array(cap * D);
    v.set(this.values[head].subarray(0, this.lengths[head] * D));
    const p = new Int32Array(cap);
    p.set(this.positions[head].subarray(0, this.lengths[head]));
    this.keys[head] = k;
    this.values[head] = v;
    this.positions[head] = p;
    this.capacity[head] = cap;
  }

  /** Reserve room so that appending `rows` more tokens does not reallocate. */
  reserve(rows: number): void {
    for (let h = 0; h < this.numKvHeads; h++) this.ensureCapacity(h, this.lengths[h] + rows);
  }

  /**
   * Append T tokens. k, v: [T, Hkv, D] (token-major, as the projections produce them);
   * token t gets absolute position startPosition + t.
   */
  append(k: Float32Array, v: Float32Array, numTokens: number, startPosition: number): void {
    const D = this.headDim;
    const Hkv = this.numKvHeads;
    if (k.length < numTokens * Hkv * D || v.length < numTokens * Hkv * D) {
      throw new Error(`KV append: expected [${numTokens}, ${Hkv}, ${D}] keys/values, got ${k.length}/${v.length} floats`);
    }
    for (let h = 0; h < Hkv; h++) {
      this.ensureCapacity(h, this.lengths[h] + numTokens);
      const base = this.lengths[h];
      const kh = this.keys[h];
      const vh = this.values[h];
      const ph = this.positions[h];
      for (let t = 0; t < numTokens; t++) {
        const src = (t * Hkv + h) * D;
        const dst = (base + t) * D;
        kh.set(k.subarray(src, src + D), dst);
        vh.set(v.subarray(src, src + D), dst);
        ph[base + t] = startPosition + t;
      }
      this.lengths[h] = base + numTokens;
    }
  }

  /**
   * A deep copy of the rows (keys, values, positions, per-head lengths) with no method state: used to
   * run several decode methods from one dense prefill, each on its own copy (eviction and page
   * bounds mutate the cache). Refuses a cache that already holds method state, since that state is
   * opaque and a copy without it would be silently different.
   */
  clone(): LayerKvCache {
    if (this.methodState.size > 0) {
      throw new Error(`LayerKvCache.clone: the cache holds method state (${[...this.methodState.keys()].join(', ')}); clone it before any decode method runs`);
    }
    const copy = new LayerKvCache(this.numKvHeads, this.headDim, 1);
    const D = this.headDim;
    for (let h = 0; h < this.numKvHeads; h++) {
      const rows = this.lengths[h];
      copy.keys[h] = this.keys[h].slice(0, Math.max(1, rows) * D);
      copy.values[h] = this.values[h].slice(0, Math.max(1, rows) * D);
      copy.positions[h] = this.positions[h].slice(0, Math.max(1, rows));
      copy.lengths[h] = rows;
      copy.capacity[h] = Math.max(1, rows);
    }
    return copy;
  }

  /**
   * Keep only the given rows of one head, in the given (ascending) order; the rest are evicted.
   * Used by eviction methods after prefill.
   */
  retainRows(head: number, rows: ArrayLike<number>): void {
    const D = this.headDim;
    const n = rows.length;
    const kh = this.keys[head];
    const vh = this.values[head];
    const ph = this.positions[head];
    let prev = -1;
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      if (r <= prev || r >= this.lengths[head]) {
        throw new Error(`retainRows: rows must be strictly ascending and < ${this.lengths[head]} (got ${r} after ${prev})`);
      }
      prev = r;
      // In place: destination index i never exceeds source index r, so nothing is overwritten early.
      if (r !== i) {
        kh.copyWithin(i * D, r * D, r * D + D);
        vh.copyWithin(i * D, r * D, r * D + D);
        ph[i] = ph[r];
      }
    }
    this.lengths[head] = n;
  }
}

/** One sequence's cache: a LayerKvCache per layer. */
export class KvCache {
  readonly layers: LayerKvCache[];
  constructor(numLayers: number, numKvHeads: number, headDim: number, initialCapacity = 256) {
    this.layers = Array.from({ length: numLayers }, () => new LayerKvCache(numKvHeads, headDim, initialCapacity));
  }
  /** Tokens processed so far (positions assigned), independent of eviction. */
  nextPosition = 0;

  /** Deep copy of every layer (see LayerKvCache.clone) and of the position counter. */
  clone(): KvCache {
    const copy = new KvCache(0, 0, 0);
    (copy.layers as LayerKvCache[]).push(...this.layers.map((l) => l.clone()));
    copy.nextPosition = this.nextPosition;
    return copy;
  }
}
