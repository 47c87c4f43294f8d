/**
 * The engine's normalised view of a Hugging Face config.json. Both config dialects (the one most
 * published checkpoints use, and the one transformers 5 writes) are parsed into this one shape by
 * `parseModelConfig` in config.ts; the model code reads only this.
 */

export type Architecture = 'llama' | 'qwen2' | 'qwen3' | 'mistral' | 'gemma3';

export type RopeScaling =
  | { kind: 'none' }
  | { kind: 'linear'; factor: number }
  | {
      kind: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface RopeParameters {
  theta: number;
  scaling: RopeScaling;
}

/** 'full' layers attend causally to everything; 'sliding' layers only to the last `slidingWindow` keys. */
export type LayerType = 'full' | 'sliding';

export interface ModelConfig {
  architecture: Architecture;
  /** The HF `architectures[0]` string, kept for display. */
  hfArchitecture: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  /** Qwen2: q/k/v projections carry a bias. */
  attentionBias: boolean;
  /** Qwen3 and Gemma 3: RMSNorm over each head of q and k before RoPE. */
  qkNorm: boolean;
  /** Gemma: norms multiply by (1 + w) instead of w. */
  normPlusOne: boolean;
  /** Gemma: extra norms after attention and after the MLP (post_attention/post_feedforward). */
  sandwichNorms: boolean;
  /** Gemma: embeddings are multiplied by sqrt(hidden_size). */
  embeddingScale: number;
  mlpActivation: 'silu' | 'gelu_tanh';
  /** Softmax scale of attention logits. */
  attentionScale: number;
  /** Final logit soft-capping (null when absent). */
  finalLogitSoftcap: number | null;
  /** Attention logit soft-capping (null when absent). */
  attnLogitSoftcap: number | null;
  /** Per layer: full or sliding attention. */
  layerTypes: LayerType[];
  slidingWindow: number | null;
  /** RoPE of full-attention layers. */
  rope: RopeParameters;
  /** RoPE of sliding layers (Gemma 3 uses a different base there); equals `rope` otherwise. */
  ropeLocal: RopeParameters;
  bosTokenId: number | null;
  eosTokenIds: number[];
  torchDtype: 'float32' | 'float16' | 'bfloat16';
}
