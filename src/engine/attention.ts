/**
 * The attention contract between the engine and the attention methods: one interface per phase.
 * The model computes q/k/v, appends k/v to the layer's cache, then hands the call to the active
 * method object; the model never knows which method runs. Methods write the attention output and
 * return how many (query, key) pairs each query head actually attended, which is where achieved
 * sparsity comes from.
 *
 * Shapes (CPU backend): T queries in a chunk, H query heads, Hkv KV heads, D head dim, g = H / Hkv.
 * Query head h reads KV head floor(h / g).
 */
import type { LayerKvCache } from './kv-cache.js';

export interface AttentionShape {
  numHeads: number; // H
  numKvHeads: number; // Hkv
  headDim: number; // D
  /** Softmax scale applied to q·k. */
  scale: number;
  /** Sliding-window layers: a query at p sees keys at positions > p - window. null: full causal. */
  slidingWindow: number | null;
  /** tanh soft-capping of logits (null: none). */
  logitSoftcap: number | null;
}

/** Attended (query, key) pair counts per query head, next to the dense causal count. */
export interface HeadCounts {
  /** [H] pairs actually attended. */
  attended: Float64Array;
  /** [H] pairs dense causal attention (with the layer's window) would attend. */
  dense: Float64Array;
}

export interface PrefillCall {
  layer: number;
  shape: AttentionShape;
  /** [T, H, D] rotated queries of this chunk. */
  queries: Float32Array;
  numQueries: number; // T
  /** Absolute position of the first query of the chunk. Query t is at queryStart + t. */
  queryStart: number;
  /** Holds keys/values of positions 0 .. queryStart + T - 1 (this chunk already appended). */
  cache: LayerKvCache;
  /** [T, H, D] output, written by the method. */
  out: Float32Array;
  /** True when this chunk ends the prompt. */
  isLastChunk: boolean;
}

/** After the whole prompt is in the cache: the hook where eviction methods compress it. */
export interface CompressCall {
  layer: number;
  shape: AttentionShape;
  /** [W, H, D] rotated queries of the last W prompt tokens (W = min(observationWindow, prompt length)). */
  windowQueries: Float32Array;
  windowLength: number; // W
  /** Absolute position of the first window query. */
  windowStart: number;
  cache: LayerKvCache;
}

export interface DecodeCall {
  layer: number;
  shape: AttentionShape;
  /** [H, D] rotated query of the new token. */
  query: Float32Array;
  /** Absolute position of the new token (its k/v are already appended to the cache). */
  position: number;
  cache: LayerKvCache;
  /** [H, D] output, written by the method. */
  out: Float32Array;
}

export interface PrefillAttention {
  readonly id: string;
  /**
   * Methods whose importance estimate needs the whole prompt (the last queries against all keys)
   * cannot run on a chunk of it: the engine then prefills the prompt as one chunk.
   */
  readonly requiresWholePrompt: boolean;
  prefill(call: PrefillCall): HeadCounts;
}

export interface DecodeAttention {
  readonly id: string;
  /** How many trailing prompt queries `afterPrefill` needs (0: the hook is not called). */
  readonly observationWindow: number;
  afterPrefill?(call: CompressCall): void;
  decode(call: DecodeCall): HeadCounts;
}

/** The pair of method objects the engine runs with; the rest of the model does not know which. */
export interface AttentionPlan {
  prefill: PrefillAttention;
  decode: DecodeAttention;
}

export function emptyCounts(numHeads: number): HeadCounts {
  return { attended: new Float64Array(numHeads), dense: new Float64Array(numHeads) };
}

/**
 * Keys a query at absolute position p may see under dense causal attention: positions in
 * [max(0, p - window + 1), p]. Returns that count.
 */
export function denseKeyCount(position: number, slidingWindow: number | null): number {
  const visible = position + 1;
  return slidingWindow === null ? visible : Math.min(visible, slidingWindow);
}
