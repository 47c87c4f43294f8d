/**
 * The tensors a checkpoint of a given ModelConfig must hold: HF names and shapes, in the order
 * transformers' modules declare them. One source for loading checks, parameter counts and the test
 * checkpoint writer.
 *
 * Norm placement differs by family although the names overlap:
 * - llama/qwen/mistral: input_layernorm before attention, post_attention_layernorm before the MLP.
 * - gemma3 (sandwich): input_layernorm before attention, post_attention_layernorm on the attention
 *   output (before the residual add), pre_feedforward_layernorm before the MLP,
 *   post_feedforward_layernorm on the MLP output (before the residual add).
 */
import type { ModelConfig } from './model-config.js';

export interface TensorSpec {
  name: string;
  /** Row-major shape as stored; Linear weights are [out_features, in_features]. */
  shape: number[];
  /** What the tensor is, for parameter accounting. */
  role: 'embedding' | 'lm_head' | 'norm' | 'linear' | 'bias';
}

export const EMBED_TOKENS = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';

/** Prefix of layer `i`'s tensors, e.g. "model.layers.3.". */
export function layerPrefix(i: number): string {
  return `model.layers.${i}.`;
}

/** Every tensor the model reads, in HF declaration order. A tied lm_head is not listed. */
export function expectedTensors(config: ModelConfig): TensorSpec[] {
  const { vocabSize: V, hiddenSize: E, intermediateSize: I, numHeads: H, numKvHeads: Hkv, headDim: D } = config;
  const specs: TensorSpec[] = [{ name: EMBED_TOKENS, shape: [V, E], role: 'embedding' }];
  for (let i = 0; i < config.numLayers; i++) {
    const p = layerPrefix(i);
    specs.push({ name: `${p}input_layernorm.weight`, shape: [E], role: 'norm' });
    specs.push({ name: `${p}self_attn.q_proj.weight`, shape: [H * D, E], role: 'linear' });
    if (config.attentionBias) specs.push({ name: `${p}self_attn.q_proj.bias`, shape: [H * D], role: 'bias' });
    specs.push({ name: `${p}self_attn.k_proj.weight`, shape: [Hkv * D, E], role: 'linear' });
    if (config.attentionBias) specs.push({ name: `${p}self_attn.k_proj.bias`, shape: [Hkv * D], role: 'bias' });
    specs.push({ name: `${p}self_attn.v_proj.weight`, shape: [Hkv * D, E], role: 'linear' });
    if (config.attentionBias) specs.push({ name: `${p}self_attn.v_proj.bias`, shape: [Hkv * D], role: 'bias' });
    specs.push({ name: `${p}self_attn.o_proj.weight`, shape: [E, H * D], role: 'linear' });
    if (config.qkNorm) {
      specs.push({ name: `${p}self_attn.q_norm.weight`, shape: [D], role: 'norm' });
      specs.push({ name: `${p}self_attn.k_norm.weight`, shape: [D], role: 'norm' });
    }
    specs.push({ name: `${p}post_attention_layernorm.weight`, shape: [E], role: 'norm' });
    if (config.sandwichNorms) specs.push({ name: `${p}pre_feedforward_layernorm.weight`, shape: [E], role: 'norm' });
    specs.push({ name: `${p}mlp.gate_proj.weight`, shape: [I, E], role: 'linear' });
    specs.push({ name: `${p}mlp.up_proj.weight`, shape: [I, E], role: 'linear' });
    specs.push({ name: `${p}mlp.down_proj.weight`, shape: [E, I], role: 'linear' });
    if (config.sandwichNorms) specs.push({ name: `${p}post_feedforward_layernorm.weight`, shape: [E], role: 'norm' });
  }
  specs.push({ name: FINAL_NORM, shape: [E], role: 'norm' });
  if (!config.tieWordEmbeddings) specs.push({ name: LM_HEAD, shape: [V, E], role: 'lm_head' });
  return specs;
}

/** Name of the tensor that projects hidden states to logits (the embedding when tied). */
export function lmHeadName(config: ModelConfig): string {
  return config.tieWordEmbeddings ? EMBED_TOKENS : LM_HEAD;
}
