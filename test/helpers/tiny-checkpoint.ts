/**
 * Deterministic tiny random checkpoints in real Hugging Face layout, one per supported
 * architecture: config.json in the transformers 5 dialect, safetensors weights under HF tensor
 * names, the tiny byte-level tokenizer, generation_config.json. Small enough for CPU tests
 * (hidden 64, 2 layers, 4 heads, 2 KV heads, head_dim 16, intermediate 128, vocab 300), with weight
 * scales that keep logits O(1). The same (arch, options) always produces byte-identical files, so
 * golden outputs computed from them by Python transformers stay valid (weights_sha256 checks it).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig } from '../../src/engine/config.js';
import type { Architecture } from '../../src/engine/model-config.js';
import type { SafetensorsDtype } from '../../src/engine/safetensors.js';
import { writeSafetensors, writeShardedSafetensors, type TensorToWrite } from '../../src/engine/safetensors-writer.js';
import { expectedTensors, type TensorSpec } from '../../src/engine/weight-layout.js';
import { toPythonStyleJson } from './python-json.js';
import { TINY_BOS_ID, TINY_EOS_ID, TINY_VOCAB_SIZE, writeTinyTokenizer } from './tiny-tokenizer.js';
import { mulberry32 } from '../../bench/seeded-random.js';

export type TinyArch = Architecture;

export interface TinyCheckpointOptions {
  /** Base seed of the weights (default 1234); each tensor's stream is derived from it and the tensor's name. */
  seed?: number;
  /** Stored dtype (default F32). */
  dtype?: SafetensorsDtype;
  /** 1 (default): model.safetensors; more: that many shards plus model.safetensors.index.json. */
  shards?: number;
  /** RoPE scaling of (global) attention layers (default none). */
  ropeScaling?: 'none' | 'llama3' | 'linear';
  /** Override the architecture's tying (default: tied for qwen2, qwen3, gemma3 as in their small models). */
  tieWordEmbeddings?: boolean;
  /** Number of layers (default 2). */
  numLayers?: number;
  /** gemma3: final logit soft-capping (default none). */
  finalLogitSoftcap?: number | null;
  /** gemma3: attn_logit_softcapping in config.json (default none); transformers' Gemma 3 ignores it, and so must we. */
  attnLogitSoftcap?: number | null;
}

export const TINY_DIMS = {
  hiddenSize: 64,
  intermediateSize: 128,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  vocabSize: TINY_VOCAB_SIZE,
  maxPositionEmbeddings: 256,
} as const;

/** Sliding windows small enough to matter in a 16–32 token test. */
export const TINY_GEMMA3_SLIDING_WINDOW = 4;
export const TINY_MISTRAL_SLIDING_WINDOW = 6;
/** gemma3 query_pre_attn_scalar differs from head_dim so a wrong attention scale shows. */
export const TINY_GEMMA3_QUERY_PRE_ATTN_SCALAR = 24;

const HF_CLASS: Record<TinyArch, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  mistral: 'MistralForCausalLM',
  gemma3: 'Gemma3ForCausalLM',
};

export { mulberry32 };

/** FNV-1a hash of a string, for per-tensor seeds independent of tensor order. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * Uniform values with the given mean and standard deviation. Only + and * on exact dyadic
 * inputs, so the float32 results are identical on every platform.
 */
function uniformTensor(count: number, seed: number, mean: number, std: number): Float32Array {
  const next = mulberry32(seed);
  const halfWidth = std * Math.sqrt(3);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = mean + (2 * next() - 1) * halfWidth;
  return out;
}

/** Mean and spread of each tensor: unit-variance projections, small biases, norms near their identity. */
function initFor(spec: TensorSpec, arch: TinyArch, tied: boolean): { mean: number; std: number } {
  switch (spec.role) {
    case 'linear':
    case 'lm_head':
      return { mean: 0, std: 1 / Math.sqrt(spec.shape[1]) };
    case 'embedding':
      // A tied embedding is also the output projection: scale it like one.
      return { mean: 0, std: tied ? 1 / Math.sqrt(spec.shape[1]) : 1 };
    case 'bias':
      return { mean: 0, std: 0.1 };
    case 'norm':
      // Gemma norms multiply by (1 + w): w near 0 is near identity.
      return { mean: arch === 'gemma3' ? 0 : 1, std: 0.1 };
  }
}

function ropeParametersFor(arch: TinyArch, scaling: TinyCheckpointOptions['ropeScaling'], theta: number): Record<string, unknown> {
  if (scaling === 'llama3') {
    // original_max_position_embeddings 16 puts the head_dim-16 wavelengths in all three llama3 bands.
    return { rope_type: 'llama3', rope_theta: theta, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 };
  }
  if (scaling === 'linear') return { rope_type: 'linear', rope_theta: theta, factor: 2 };
  return { rope_type: 'default', rope_theta: theta };
}

/** config.json of a tiny checkpoint, in the transformers 5 dialect. */
export function tinyConfigJson(arch: TinyArch, options: TinyCheckpointOptions = {}): Record<string, unknown> {
  const numLayers = options.numLayers ?? 2;
  const dtype = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' }[options.dtype ?? 'F32'];
  const tied = options.tieWordEmbeddings ?? (arch === 'qwen2' || arch === 'qwen3' || arch === 'gemma3');
  const scaling = options.ropeScaling ?? 'none';
  const common: Record<string, unknown> = {
    architectures: [HF_CLASS[arch]],
    model_type: arch === 'gemma3' ? 'gemma3_text' : arch,
    vocab_size: TINY_DIMS.vocabSize,
    hidden_size: TINY_DIMS.hiddenSize,
    intermediate_size: TINY_DIMS.intermediateSize,
    num_hidden_layers: numLayers,
    num_attention_heads: TINY_DIMS.numHeads,
    num_key_value_heads: TINY_DIMS.numKvHeads,
    head_dim: TINY_DIMS.headDim,
    max_position_embeddings: TINY_DIMS.maxPositionEmbeddings,
    rms_norm_eps: 1e-6,
    initializer_range: 0.02,
    attention_dropout: 0,
    use_cache: true,
    tie_word_embeddings: tied,
    bos_token_id: TINY_BOS_ID,
    eos_token_id: TINY_EOS_ID,
    pad_token_id: null,
    dtype,
  };
  switch (arch) {
    case 'llama':
      return { ...common, hidden_act: 'silu', attention_bias: false, mlp_bias: false, rope_parameters: ropeParametersFor(arch, scaling, 10000) };
    case 'mistral':
      return { ...common, hidden_act: 'silu', sliding_window: TINY_MISTRAL_SLIDING_WINDOW, rope_parameters: ropeParametersFor(arch, scaling, 1_000_000) };
    case 'qwen2':
    case 'qwen3':
      return {
        ...common,
        hidden_act: 'silu',
        ...(arch === 'qwen3' ? { attention_bias: false } : {}),
        use_sliding_window: false,
        sliding_window: null,
        max_window_layers: numLayers,
        layer_types: Array(numLayers).fill('full_attention'),
        rope_parameters: ropeParametersFor(arch, scaling, 1_000_000),
      };
    case 'gemma3':
      return {
        ...common,
        hidden_activation: 'gelu_pytorch_tanh',
        attention_bias: false,
        query_pre_attn_scalar: TINY_GEMMA3_QUERY_PRE_ATTN_SCALAR,
        sliding_window: TINY_GEMMA3_SLIDING_WINDOW,
        // Every other layer global, starting with a sliding one (the real pattern is 5 sliding : 1 global).
        layer_types: Array.from({ length: numLayers }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention')),
        final_logit_softcapping: options.finalLogitSoftcap ?? null,
        attn_logit_softcapping: options.attnLogitSoftcap ?? null,
        rope_parameters: {
          full_attention: ropeParametersFor(arch, scaling, 1_000_000),
          sliding_attention: { rope_type: 'default', rope_theta: 10000 },
        },
      };
  }
}

/** The random tensors of a tiny checkpoint (float32 values before any dtype rounding). */
export function tinyTensors(configJson: Record<string, unknown>, seed = 1234): TensorToWrite[] {
  const config = parseModelConfig(configJson, 'tiny config');
  return expectedTensors(config).map((spec) => {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const { mean, std } = initFor(spec, config.architecture, config.tieWordEmbeddings);
    return { name: spec.name, shape: spec.shape, data: uniformTensor(count, (fnv1a(spec.name) ^ seed) >>> 0, mean, std) };
  });
}

export interface TinyCheckpoint {
  dir: string;
  configJson: Record<string, unknown>;
  /** Safetensors files written, relative to dir. */
  weightFiles: string[];
}

/** Write a complete tiny checkpoint of `arch` into `dir` (created if needed). */
export function writeTinyCheckpoint(dir: string, arch: TinyArch, options: TinyCheckpointOptions = {}): TinyCheckpoint {
  mkdirSync(dir, { recursive: true });
  const configJson = tinyConfigJson(arch, options);
  const tensors = tinyTensors(configJson, options.seed ?? 1234);
  const dtype = options.dtype ?? 'F32';
  const metadata = { format: 'pt' };
  let weightFiles: string[];
  if ((options.shards ?? 1) > 1) weightFiles = writeShardedSafetensors(dir, tensors, options.shards!, { dtype, metadata });
  else {
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { dtype, metadata });
    weightFiles = ['model.safetensors'];
  }
  writeFileSync(join(dir, 'config.json'), toPythonStyleJson(configJson));
  writeFileSync(
    join(dir, 'generation_config.json'),
    toPythonStyleJson({ bos_token_id: TINY_BOS_ID, eos_token_id: [TINY_EOS_ID], pad_token_id: null, do_sample: false }),
  );
  writeTinyTokenizer(dir);
  return { dir, configJson, weightFiles };
}

/** The checkpoint variants the golden fixtures cover: one folder each. */
export const TINY_VARIANTS: { name: string; arch: TinyArch; options: TinyCheckpointOptions }[] = [
  { name: 'llama', arch: 'llama', options: {} },
  { name: 'llama-rope-llama3', arch: 'llama', options: { ropeScaling: 'llama3' } },
  { name: 'llama-rope-linear', arch: 'llama', options: { ropeScaling: 'linear' } },
  { name: 'llama-bf16-sharded', arch: 'llama', options: { dtype: 'BF16', shards: 2 } },
  { name: 'qwen2', arch: 'qwen2', options: {} },
  { name: 'qwen3', arch: 'qwen3', options: {} },
  { name: 'mistral', arch: 'mistral', options: {} },
  { name: 'gemma3', arch: 'gemma3', options: {} },
  { name: 'gemma3-softcap', arch: 'gemma3', options: { numLayers: 3, finalLogitSoftcap: 3, attnLogitSoftcap: 5, ropeScaling: 'linear' } },
];
