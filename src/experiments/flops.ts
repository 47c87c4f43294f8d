/**
 * FLOPs per example, from the model's shape and the attended (query, key) pair counts the methods
 * report. Pure functions over ModelConfig. One multiply-add counts as 2 FLOPs throughout.
 *
 * - Linear layers: 2 · (matmul parameters) per token that goes through them. Matmul parameters are
 *   the q/k/v/o projections and the MLP's gate/up/down of every layer, plus the LM head
 *   (hidden × vocab). The LM head counts because it is a real matrix product (a tied head is the
 *   same product); it runs only for tokens whose logits are computed: the last prompt token in
 *   prefill and every decode step. The embedding lookup is a gather (no FLOPs); norms, biases,
 *   RoPE, activations and softmax are elementwise and left out (they are O(hidden) per token,
 *   under 1% of the matmuls for any real model).
 * - Attention: each attended (query, key) pair costs 4·d FLOPs per query head: 2·d for q·k and
 *   2·d for adding p·v. Dense causal prefill over n tokens attends n(n+1)/2 pairs per head on a
 *   full layer (so ≈ 2·L·H·d·n²), and Σ_p min(p+1, w) on a sliding layer of window w. A decode step
 *   whose context holds c keys attends c pairs per head (min(c, w) on sliding layers): 4·L·H·d·c.
 * - Sparse attention: the same 4·d per pair, over the pairs the method actually attended
 *   (= dense × (1 − s_achieved) for the pair-weighted achieved sparsity), plus the method's
 *   importance-estimation FLOPs, which the method reports.
 */
import type { ModelConfig } from '../engine/model-config.js';

/** The subset of ModelConfig the FLOPs model reads. */
export type FlopsModelShape = Pick<
  ModelConfig,
  'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim' | 'layerTypes' | 'slidingWindow' | 'tieWordEmbeddings'
>;

export interface ParameterCounts {
  /** Input embedding table (vocab × hidden): a lookup, no FLOPs. */
  embedding: number;
  /** q, k, v, o projections of one layer. */
  attentionPerLayer: number;
  /** gate, up, down projections of one layer. */
  mlpPerLayer: number;
  /** All layers' matmul weights. */
  layers: number;
  /** hidden × vocab, whether or not it shares storage with the embedding. */
  lmHead: number;
  /** layers + lmHead: the parameters that multiply activations (the "non-embedding" count). */
  nonEmbedding: number;
  /** Stored parameters: embedding + layers + (lmHead unless tied). Norms and biases excluded. */
  stored: number;
}

export function parameterCounts(cfg: FlopsModelShape): ParameterCounts {
  const { hiddenSize: h, numHeads: H, numKvHeads: Hkv, headDim: d, intermediateSize: m, vocabSize: V, numLayers: L } = cfg;
  const attentionPerLayer = h * H * d + 2 * h * Hkv * d + H * d * h;
  const mlpPerLayer = 3 * h * m;
  const layers = L * (attentionPerLayer + mlpPerLayer);
  const lmHead = h * V;
  const embedding = V * h;
  return {
    embedding,
    attentionPerLayer,
    mlpPerLayer,
    layers,
    lmHead,
    nonEmbedding: layers + lmHead,
    stored: embedding + layers + (cfg.tieWordEmbeddings ? 0 : lmHead),
  };
}

function layerWindow(cfg: FlopsModelShape, layer: number): number | null {
  return cfg.layerTypes[layer] === 'sliding' ? cfg.slidingWindow : null;
}

/** Σ_{p=0}^{n-1} min(p+1, w): causal pairs of one head over n tokens, windowed when w is set. */
export function causalPairs(n: number, window: number | null): number {
  if (n <= 0) return 0;
  if (window === null || window >= n) return (n * (n + 1)) / 2;
  // The first w queries see 1..w keys; the remaining n − w see w each.
  return (window * (window + 1)) / 2 + (n - window) * window;
}

/** Dense prefill pairs summed over layers and query heads. */
export function densePrefillPairs(cfg: FlopsModelShape, n: number): number {
  let total = 0;
  for (let l = 0; l < cfg.numLayers; l++) total += causalPairs(n, layerWindow(cfg, l)) * cfg.numHeads;
  return total;
}

/**
 * Dense decode pairs summed over layers and query heads for `steps` decode steps after an n-token
 * prompt: step j (0-based) processes the token at position n + j, whose context holds n + j + 1
 * keys (itself included).
 */
export function denseDecodePairs(cfg: FlopsModelShape, n: number, steps: number): number {
  let total = 0;
  for (let l = 0; l < cfg.numLayers; l++) {
    const w = layerWindow(cfg, l);
    // Σ_{c=n+1}^{n+steps} min(c, w)
    const full = causalPairs(n + steps, w) - causalPairs(n, w);
    total += full * cfg.numHeads;
  }
  return total;
}

/** 4·d FLOPs per attended (query, key) pair of one query head. */
export function attentionFlops(cfg: FlopsModelShape, attendedPairs: number): number {
  return 4 * cfg.headDim * attendedPairs;
}

export interface PhaseFlops {
  linear: number;
  attention: number;
  estimation: number;
  total: number;
}

export interface ExampleFlops {
  prefill: PhaseFlops;
  decode: PhaseFlops;
  total: number;
}

export interface ExampleWork {
  /** Prompt tokens (templated input). */
  inputTokens: number;
  /** Generated tokens, the last one (a stop token, or the limit) included. */
  outputTokens: number;
  /** Prefill pairs attended, summed over layers and query heads; omitted: dense. */
  prefillAttendedPairs?: number;
  /** Decode pairs (KV entries read), summed over steps, layers and query heads; omitted: dense. */
  decodeAttendedPairs?: number;
  /** Importance-estimation FLOPs the prefill method reported (0 for dense). */
  prefillEstimationFlops?: number;
  /** Importance-estimation FLOPs the decode method reported, summed over steps. */
  decodeEstimationFlops?: number;
}

/**
 * Decode steps for `outputTokens` generated tokens: the first comes from the prefill's logits, each
 * later one needs one forward pass of the token before it.
 */
export function decodeSteps(outputTokens: number): number {
  return Math.max(0, outputTokens - 1);
}

function phase(linear: number, attention: number, estimation: number): PhaseFlops {
  return { linear, attention, estimation, total: linear + attention + estimation };
}

export function exampleFlops(cfg: FlopsModelShape, work: ExampleWork): ExampleFlops {
  const n = work.inputTokens;
  const steps = decodeSteps(work.outputTokens);
  const p = parameterCounts(cfg);
  const prefillPairs = work.prefillAttendedPairs ?? densePrefillPairs(cfg, n);
  const decodePairs = work.decodeAttendedPairs ?? denseDecodePairs(cfg, n, steps);
  const prefill = phase(
    2 * p.layers * n + (n > 0 ? 2 * p.lmHead : 0),
    attentionFlops(cfg, prefillPairs),
    work.prefillEstimationFlops ?? 0,
  );
  const decode = phase(2 * p.nonEmbedding * steps, attentionFlops(cfg, decodePairs), work.decodeEstimationFlops ?? 0);
  return { prefill, decode, total: prefill.total + decode.total };
}
