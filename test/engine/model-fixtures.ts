/**
 * Tiny random models built in memory (no files): a ModelConfig per architecture and deterministic
 * random weights under HF tensor names. Used by the model, generation and CPU-backend tests.
 */
import type { Architecture, ModelConfig } from '../../src/engine/model-config.js';
import { InMemoryWeights, type WeightTensor } from '../../src/engine/weights.js';
import { mulberry32 } from '../helpers/tiny-checkpoint.js';

/** mulberry32 (the tiny-checkpoint writer's generator): small, seedable, good enough for tests. */
export const rng = mulberry32;

export function tinyConfig(arch: Architecture, overrides: Partial<ModelConfig> = {}): ModelConfig {
  const numLayers = overrides.numLayers ?? 2;
  const gemma = arch === 'gemma3';
  const headDim = overrides.headDim ?? 8;
  const base: ModelConfig = {
    architecture: arch,
    hfArchitecture: `${arch}ForCausalLM`,
    vocabSize: 61,
    hiddenSize: 24,
    intermediateSize: 40,
    numLayers,
    numHeads: 4,
    numKvHeads: 2,
    headDim,
    maxPositionEmbeddings: 4096,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: gemma,
    attentionBias: arch === 'qwen2',
    qkNorm: arch === 'qwen3' || gemma,
    normPlusOne: gemma,
    sandwichNorms: gemma,
    embeddingScale: gemma ? Math.sqrt(24) : 1,
    mlpActivation: gemma ? 'gelu_tanh' : 'silu',
    attentionScale: 1 / Math.sqrt(headDim),
    finalLogitSoftcap: null,
    attnLogitSoftcap: null,
    layerTypes: Array.from({ length: numLayers }, (_, l) => (gemma && l % 2 === 0 ? 'sliding' : 'full')),
    slidingWindow: gemma ? 5 : null,
    rope: { theta: 10000, scaling: arch === 'llama' ? { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } : { kind: 'none' } },
    ropeLocal: { theta: gemma ? 100 : 10000, scaling: { kind: 'none' } },
    bosTokenId: 1,
    eosTokenIds: [2],
    torchDtype: 'float32',
  };
  if (!gemma && !overrides.ropeLocal) base.ropeLocal = overrides.rope ?? base.rope;
  return { ...base, ...overrides };
}

/** Deterministic random weights for `config` under HF names. */
export function randomWeights(config: ModelConfig, seed = 1): InMemoryWeights {
  const rand = rng(seed);
  const tensors = new Map<string, WeightTensor>();
  const uniform = (shape: number[], scale: number, offset = 0): WeightTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = offset + (rand() * 2 - 1) * scale;
    return { shape, data };
  };
  const c = config;
  const hidden = c.hiddenSize, D = c.headDim;
  // Gemma norms multiply by (1 + w): weights near 0; others near 1.
  const normOffset = c.normPlusOne ? 0 : 1;
  const linear = (name: string, out: number, inp: number, bias: boolean) => {
    tensors.set(`${name}.weight`, uniform([out, inp], 1.5 / Math.sqrt(inp)));
    if (bias) tensors.set(`${name}.bias`, uniform([out], 0.2));
  };
  tensors.set('model.embed_tokens.weight', uniform([c.vocabSize, hidden], c.normPlusOne ? 0.3 : 1));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    tensors.set(`${p}.input_layernorm.weight`, uniform([hidden], 0.2, normOffset));
    linear(`${p}.self_attn.q_proj`, c.numHeads * D, hidden, c.attentionBias);
    linear(`${p}.self_attn.k_proj`, c.numKvHeads * D, hidden, c.attentionBias);
    linear(`${p}.self_attn.v_proj`, c.numKvHeads * D, hidden, c.attentionBias);
    linear(`${p}.self_attn.o_proj`, hidden, c.numHeads * D, false);
    if (c.qkNorm) {
      tensors.set(`${p}.self_attn.q_norm.weight`, uniform([D], 0.2, normOffset));
      tensors.set(`${p}.self_attn.k_norm.weight`, uniform([D], 0.2, normOffset));
    }
    tensors.set(`${p}.post_attention_layernorm.weight`, uniform([hidden], 0.2, normOffset));
    if (c.sandwichNorms) {
      tensors.set(`${p}.pre_feedforward_layernorm.weight`, uniform([hidden], 0.2, normOffset));
      tensors.set(`${p}.post_feedforward_layernorm.weight`, uniform([hidden], 0.2, normOffset));
    }
    linear(`${p}.mlp.gate_proj`, c.intermediateSize, hidden, false);
    linear(`${p}.mlp.up_proj`, c.intermediateSize, hidden, false);
    linear(`${p}.mlp.down_proj`, hidden, c.intermediateSize, false);
  }
  tensors.set('model.norm.weight', uniform([hidden], 0.2, normOffset));
  if (!c.tieWordEmbeddings) tensors.set('lm_head.weight', uniform([c.vocabSize, hidden], 1.5 / Math.sqrt(hidden)));
  return new InMemoryWeights(tensors);
}

export const ARCHITECTURES: Architecture[] = ['llama', 'qwen2', 'qwen3', 'mistral', 'gemma3'];

export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return worst;
}

export function randomTokens(n: number, vocab: number, seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}
