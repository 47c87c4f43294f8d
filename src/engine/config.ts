/**
 * Parse a Hugging Face config.json into the engine's ModelConfig (model-config.ts).
 *
 * Two dialects load. The classic one (most published checkpoints): `rope_theta`, `rope_scaling`
 * ({rope_type | type, factor, ...}); Gemma 3 adds `rope_local_base_freq` and `sliding_window_pattern`.
 * The transformers 5 one: `rope_parameters` (one RoPE dict, or per layer type for Gemma 3:
 * {full_attention: {...}, sliding_attention: {...}}, each carrying its own `rope_theta`) and
 * `layer_types`. Missing fields take the defaults transformers' config class for that architecture
 * uses (configuration_<arch>.py), so a config that loads there loads here with the same meaning.
 * Gemma3ForConditionalGeneration configs are read through their `text_config`.
 */
import { z } from 'zod';
import type { Architecture, LayerType, ModelConfig, RopeParameters, RopeScaling } from './model-config.js';

export const SUPPORTED_MODEL_TYPES = ['llama', 'qwen2', 'qwen3', 'mistral', 'gemma3_text', 'gemma3'] as const;

const MODEL_TYPE_TO_ARCH: Record<string, Architecture> = {
  llama: 'llama',
  qwen2: 'qwen2',
  qwen3: 'qwen3',
  mistral: 'mistral',
  gemma3_text: 'gemma3',
  gemma3: 'gemma3',
};

const HF_CLASS_TO_ARCH: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
  MistralForCausalLM: 'mistral',
  Gemma3ForCausalLM: 'gemma3',
  Gemma3ForConditionalGeneration: 'gemma3',
};

/** transformers' defaults per architecture for fields a config.json may leave out. */
interface ArchDefaults {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** null: equal to the number of query heads. */
  numKvHeads: number | null;
  /** null: hidden_size / num_attention_heads. */
  headDim: number | null;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  ropeTheta: number;
  activation: string;
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
}

const DEFAULTS: Record<Architecture, ArchDefaults> = {
  llama: {
    vocabSize: 32000, hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, numKvHeads: null,
    headDim: null, maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, tieWordEmbeddings: false, ropeTheta: 10000,
    activation: 'silu', slidingWindow: null, bosTokenId: 1, eosTokenId: 2,
  },
  mistral: {
    vocabSize: 32000, hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8,
    headDim: null, maxPositionEmbeddings: 4096 * 32, rmsNormEps: 1e-6, tieWordEmbeddings: false, ropeTheta: 10000,
    activation: 'silu', slidingWindow: 4096, bosTokenId: 1, eosTokenId: 2,
  },
  qwen2: {
    vocabSize: 151936, hiddenSize: 4096, intermediateSize: 22016, numLayers: 32, numHeads: 32, numKvHeads: 32,
    headDim: null, maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, tieWordEmbeddings: false, ropeTheta: 10000,
    activation: 'silu', slidingWindow: 4096, bosTokenId: null, eosTokenId: null,
  },
  qwen3: {
    vocabSize: 151936, hiddenSize: 4096, intermediateSize: 22016, numLayers: 32, numHeads: 32, numKvHeads: 32,
    headDim: 128, maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, tieWordEmbeddings: false, ropeTheta: 10000,
    activation: 'silu', slidingWindow: 4096, bosTokenId: null, eosTokenId: null,
  },
  gemma3: {
    vocabSize: 262208, hiddenSize: 2304, intermediateSize: 9216, numLayers: 26, numHeads: 8, numKvHeads: 4,
    headDim: 256, maxPositionEmbeddings: 131072, rmsNormEps: 1e-6, tieWordEmbeddings: true, ropeTheta: 1_000_000,
    activation: 'gelu_pytorch_tanh', slidingWindow: 4096, bosTokenId: 2, eosTokenId: 1,
  },
};
const GEMMA3_LOCAL_ROPE_THETA = 10_000;
const GEMMA3_SLIDING_WINDOW_PATTERN = 6;
const GEMMA3_QUERY_PRE_ATTN_SCALAR = 256;
/** Qwen2/Qwen3: layers from this index on slide when use_sliding_window is set. */
const QWEN_MAX_WINDOW_LAYERS = 28;

const posInt = z.number().int().positive();
const posNum = z.number().positive();

const ropeDictSchema = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(),
  rope_theta: posNum.optional(),
  factor: posNum.optional(),
  low_freq_factor: posNum.optional(),
  high_freq_factor: posNum.optional(),
  original_max_position_embeddings: posInt.optional(),
  partial_rotary_factor: posNum.optional(),
});
type RopeDict = z.infer<typeof ropeDictSchema>;

const layerTypeSchema = z.enum(['full_attention', 'sliding_attention']);

const rawConfigSchema = z.looseObject({
  model_type: z.string().optional(),
  architectures: z.array(z.string()).optional(),
  vocab_size: posInt.optional(),
  hidden_size: posInt.optional(),
  intermediate_size: posInt.optional(),
  num_hidden_layers: posInt.optional(),
  num_attention_heads: posInt.optional(),
  num_key_value_heads: posInt.nullable().optional(),
  head_dim: posInt.nullable().optional(),
  max_position_embeddings: posInt.optional(),
  rms_norm_eps: posNum.optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  hidden_act: z.string().optional(),
  hidden_activation: z.string().nullable().optional(),
  rope_theta: posNum.optional(),
  rope_scaling: ropeDictSchema.nullable().optional(),
  rope_parameters: z.union([
    z.object({ full_attention: ropeDictSchema.optional(), sliding_attention: ropeDictSchema.optional() }).strict(),
    ropeDictSchema,
  ]).nullable().optional(),
  rope_local_base_freq: posNum.optional(),
  partial_rotary_factor: posNum.optional(),
  sliding_window: posInt.nullable().optional(),
  sliding_window_pattern: posInt.optional(),
  use_sliding_window: z.boolean().optional(),
  max_window_layers: z.number().int().nonnegative().optional(),
  layer_types: z.array(layerTypeSchema).nullable().optional(),
  query_pre_attn_scalar: posNum.nullable().optional(),
  final_logit_softcapping: posNum.nullable().optional(),
  attn_logit_softcapping: posNum.nullable().optional(),
  bos_token_id: z.number().int().nonnegative().nullable().optional(),
  eos_token_id: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullable().optional(),
  torch_dtype: z.string().nullable().optional(),
  dtype: z.string().nullable().optional(),
});
type RawConfig = z.infer<typeof rawConfigSchema>;

/** An error about a config file, naming the file and the field. */
export class ConfigError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ConfigError';
  }
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[') || '(root)';
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Which architecture a config describes; an unsupported one gets an error listing those supported. */
function detectArchitecture(json: Record<string, unknown>, source: string): Architecture {
  const modelType = typeof json.model_type === 'string' ? json.model_type : undefined;
  const classes = Array.isArray(json.architectures) ? json.architectures.filter((a): a is string => typeof a === 'string') : [];
  if (modelType !== undefined) {
    const arch = MODEL_TYPE_TO_ARCH[modelType];
    if (arch) return arch;
  } else {
    for (const c of classes) if (HF_CLASS_TO_ARCH[c]) return HF_CLASS_TO_ARCH[c];
  }
  if (modelType === undefined && classes.length === 0) {
    throw new ConfigError(source, `missing field "model_type" (and no "architectures"); supported model types: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  }
  const named = modelType !== undefined ? `model_type "${modelType}"` : `architectures ${JSON.stringify(classes)}`;
  throw new ConfigError(
    source,
    `unsupported architecture: ${named}; supported model types: ${SUPPORTED_MODEL_TYPES.join(', ')} ` +
      `(classes ${Object.keys(HF_CLASS_TO_ARCH).join(', ')})`,
  );
}

/**
 * Gemma3ForConditionalGeneration nests the language model's config under `text_config`; the
 * engine runs only that part. Token ids and dtype may sit on the outer config.
 */
function unwrapTextConfig(json: Record<string, unknown>, source: string): { inner: Record<string, unknown>; hfClass: string | undefined } {
  const classes = Array.isArray(json.architectures) ? (json.architectures as unknown[]) : [];
  const hfClass = typeof classes[0] === 'string' ? (classes[0] as string) : undefined;
  const nested = json.model_type === 'gemma3' || hfClass === 'Gemma3ForConditionalGeneration';
  if (!nested) return { inner: json, hfClass };
  if (!isObject(json.text_config)) {
    throw new ConfigError(source, 'missing field "text_config": a Gemma3ForConditionalGeneration config must nest its language model config there');
  }
  const inner: Record<string, unknown> = { model_type: 'gemma3_text', ...json.text_config };
  for (const key of ['bos_token_id', 'eos_token_id', 'torch_dtype', 'dtype', 'tie_word_embeddings'] as const) {
    if (inner[key] === undefined && json[key] !== undefined) inner[key] = json[key];
  }
  if (inner.model_type !== 'gemma3_text') {
    throw new ConfigError(source, `field "text_config.model_type" is "${String(inner.model_type)}"; expected "gemma3_text"`);
  }
  return { inner, hfClass };
}

function ropeFromDict(dict: RopeDict, defaultTheta: number, field: string, source: string): RopeParameters {
  const theta = dict.rope_theta ?? defaultTheta;
  const kind = dict.rope_type ?? dict.type ?? 'default';
  if (dict.partial_rotary_factor !== undefined && dict.partial_rotary_factor !== 1) {
    throw new ConfigError(source, `field "${field}.partial_rotary_factor" = ${dict.partial_rotary_factor} is not supported (only full rotary embeddings)`);
  }
  const need = (key: 'factor' | 'low_freq_factor' | 'high_freq_factor' | 'original_max_position_embeddings'): number => {
    const v = dict[key];
    if (v === undefined) throw new ConfigError(source, `missing field "${field}.${key}" required by rope_type "${kind}"`);
    return v;
  };
  let scaling: RopeScaling;
  switch (kind) {
    case 'default':
      scaling = { kind: 'none' };
      break;
    case 'linear':
      scaling = { kind: 'linear', factor: need('factor') };
      break;
    case 'llama3':
      scaling = {
        kind: 'llama3',
        factor: need('factor'),
        lowFreqFactor: need('low_freq_factor'),
        highFreqFactor: need('high_freq_factor'),
        originalMaxPositionEmbeddings: need('original_max_position_embeddings'),
      };
      break;
    default:
      throw new ConfigError(source, `field "${field}.rope_type" = "${kind}" is not supported (supported: default, linear, llama3)`);
  }
  return { theta, scaling };
}

/** RoPE of full and sliding layers, from whichever dialect the config uses. */
function parseRope(raw: RawConfig, arch: Architecture, source: string): { rope: RopeParameters; ropeLocal: RopeParameters } {
  const globalTheta = raw.rope_theta ?? DEFAULTS[arch].ropeTheta;
  const params = raw.rope_parameters;
  const perLayerType = isObject(params) && ('full_attention' in params || 'sliding_attention' in params);
  // When both are present, transformers 5 takes rope_scaling over (Gemma: merges it into the global
  // layers' entry); mirror that rather than guess.
  const scaling = raw.rope_scaling && Object.keys(raw.rope_scaling).length > 0 ? raw.rope_scaling : null;

  if (arch === 'gemma3') {
    const localTheta = raw.rope_local_base_freq ?? GEMMA3_LOCAL_ROPE_THETA;
    if (perLayerType) {
      const p = params as { full_attention?: RopeDict; sliding_attention?: RopeDict };
      const full = { ...(p.full_attention ?? {}), ...(scaling ?? {}) };
      return {
        rope: ropeFromDict(full, globalTheta, scaling ? 'rope_scaling' : 'rope_parameters.full_attention', source),
        ropeLocal: ropeFromDict(p.sliding_attention ?? {}, localTheta, 'rope_parameters.sliding_attention', source),
      };
    }
    // Classic dialect (or a flat rope_parameters): scaling applies to global layers only, as in transformers.
    const dict = scaling ?? (params as RopeDict | null | undefined) ?? {};
    return {
      rope: ropeFromDict(dict, globalTheta, scaling ? 'rope_scaling' : 'rope_parameters', source),
      ropeLocal: { theta: localTheta, scaling: { kind: 'none' } },
    };
  }

  if (perLayerType) {
    throw new ConfigError(source, `field "rope_parameters" is keyed by layer type, which ${arch} does not use`);
  }
  const dict = scaling ?? (params as RopeDict | null | undefined) ?? {};
  const rope = ropeFromDict(dict, globalTheta, scaling ? 'rope_scaling' : 'rope_parameters', source);
  if (raw.partial_rotary_factor !== undefined && raw.partial_rotary_factor !== 1) {
    throw new ConfigError(source, `field "partial_rotary_factor" = ${raw.partial_rotary_factor} is not supported (only full rotary embeddings)`);
  }
  return { rope, ropeLocal: rope };
}

/** Per-layer attention kind and the window of sliding layers, following each architecture's rules. */
function parseLayerTypes(raw: RawConfig, arch: Architecture, numLayers: number, source: string): { layerTypes: LayerType[]; slidingWindow: number | null } {
  const fromHf = (t: 'full_attention' | 'sliding_attention'): LayerType => (t === 'sliding_attention' ? 'sliding' : 'full');
  const explicit = raw.layer_types ?? null;
  if (explicit && explicit.length !== numLayers) {
    throw new ConfigError(source, `field "layer_types" has ${explicit.length} entries but num_hidden_layers is ${numLayers}`);
  }
  const windowField = raw.sliding_window === undefined ? DEFAULTS[arch].slidingWindow : raw.sliding_window;
  let layerTypes: LayerType[];
  let slidingWindow: number | null;
  switch (arch) {
    case 'llama':
      if (explicit?.includes('sliding_attention')) throw new ConfigError(source, 'field "layer_types" has sliding_attention layers, which llama does not support');
      return { layerTypes: Array(numLayers).fill('full'), slidingWindow: null };
    case 'mistral':
      // Mistral slides on every layer whenever sliding_window is set (it has no layer_types).
      slidingWindow = windowField;
      layerTypes = Array(numLayers).fill(slidingWindow === null ? 'full' : 'sliding');
      return { layerTypes, slidingWindow };
    case 'qwen2':
    case 'qwen3': {
      // The window is live only when use_sliding_window is set; then layers >= max_window_layers slide.
      slidingWindow = raw.use_sliding_window ? windowField : null;
      if (explicit) layerTypes = explicit.map(fromHf);
      else {
        const first = raw.max_window_layers ?? QWEN_MAX_WINDOW_LAYERS;
        layerTypes = Array.from({ length: numLayers }, (_, i) => (slidingWindow !== null && i >= first ? 'sliding' : 'full'));
      }
      break;
    }
    case 'gemma3': {
      slidingWindow = windowField;
      if (explicit) layerTypes = explicit.map(fromHf);
      else {
        const pattern = raw.sliding_window_pattern ?? GEMMA3_SLIDING_WINDOW_PATTERN;
        layerTypes = Array.from({ length: numLayers }, (_, i) => ((i + 1) % pattern !== 0 ? 'sliding' : 'full'));
      }
      break;
    }
  }
  if (layerTypes.includes('sliding') && slidingWindow === null) {
    throw new ConfigError(source, 'field "layer_types" has sliding_attention layers but "sliding_window" is null');
  }
  if (!layerTypes.includes('sliding')) slidingWindow = null;
  return { layerTypes, slidingWindow };
}

function parseActivation(raw: RawConfig, arch: Architecture, source: string): ModelConfig['mlpActivation'] {
  const field = arch === 'gemma3' ? 'hidden_activation' : 'hidden_act';
  const name = (arch === 'gemma3' ? raw.hidden_activation ?? raw.hidden_act : raw.hidden_act) ?? DEFAULTS[arch].activation;
  if (name === 'silu' || name === 'swish') return 'silu';
  if (name === 'gelu_pytorch_tanh' || name === 'gelu_tanh') return 'gelu_tanh';
  throw new ConfigError(source, `field "${field}" = "${name}" is not supported (supported: silu, gelu_pytorch_tanh)`);
}

function parseDtype(raw: RawConfig, source: string): ModelConfig['torchDtype'] {
  const field = raw.dtype != null ? 'dtype' : 'torch_dtype';
  const name = raw.dtype ?? raw.torch_dtype ?? 'float32';
  const normalised = name.replace(/^torch\./, '');
  if (normalised === 'float32' || normalised === 'float16' || normalised === 'bfloat16') return normalised;
  if (normalised === 'float') return 'float32';
  if (normalised === 'half') return 'float16';
  throw new ConfigError(source, `field "${field}" = "${name}" is not supported (supported: float32, float16, bfloat16)`);
}

/**
 * Validate a parsed config.json and normalise it. `source` names the file in error messages.
 * Throws ConfigError naming the field for a wrong type, an impossible value or an unsupported feature.
 */
export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (!isObject(json)) throw new ConfigError(source, 'expected a JSON object');
  const arch = detectArchitecture(json, source);
  const { inner, hfClass } = unwrapTextConfig(json, source);
  const parsed = rawConfigSchema.safeParse(inner);
  if (!parsed.success) {
    const prefix = inner === json ? '' : 'text_config.';
    const issues = parsed.error.issues.map((i) => `field "${prefix}${fieldPath(i.path)}": ${i.message}`);
    throw new ConfigError(source, issues.join('; '));
  }
  const raw = parsed.data;
  const d = DEFAULTS[arch];

  if ((arch === 'llama' || arch === 'mistral' || arch === 'qwen3') && raw.attention_bias) {
    throw new ConfigError(source, `field "attention_bias" = true is not supported for ${arch}`);
  }
  if (raw.mlp_bias) throw new ConfigError(source, 'field "mlp_bias" = true is not supported');

  const hiddenSize = raw.hidden_size ?? d.hiddenSize;
  const numHeads = raw.num_attention_heads ?? d.numHeads;
  const numKvHeads = raw.num_key_value_heads ?? d.numKvHeads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(source, `field "num_key_value_heads" = ${numKvHeads} does not divide num_attention_heads = ${numHeads}`);
  }
  let headDim = raw.head_dim ?? d.headDim;
  if (headDim === null) {
    if (hiddenSize % numHeads !== 0) {
      throw new ConfigError(source, `missing field "head_dim" and hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
    }
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) throw new ConfigError(source, `field "head_dim" = ${headDim} must be even for rotary embeddings`);

  const numLayers = raw.num_hidden_layers ?? d.numLayers;
  const { rope, ropeLocal } = parseRope(raw, arch, source);
  const { layerTypes, slidingWindow } = parseLayerTypes(raw, arch, numLayers, source);
  const isGemma = arch === 'gemma3';
  const queryPreAttnScalar = raw.query_pre_attn_scalar ?? GEMMA3_QUERY_PRE_ATTN_SCALAR;
  const eos = raw.eos_token_id === undefined ? d.eosTokenId : raw.eos_token_id;

  return {
    architecture: arch,
    hfArchitecture: hfClass ?? Object.entries(HF_CLASS_TO_ARCH).find(([, a]) => a === arch)![0],
    vocabSize: raw.vocab_size ?? d.vocabSize,
    hiddenSize,
    intermediateSize: raw.intermediate_size ?? d.intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings: raw.max_position_embeddings ?? d.maxPositionEmbeddings,
    rmsNormEps: raw.rms_norm_eps ?? d.rmsNormEps,
    tieWordEmbeddings: raw.tie_word_embeddings ?? d.tieWordEmbeddings,
    attentionBias: arch === 'qwen2',
    qkNorm: arch === 'qwen3' || isGemma,
    normPlusOne: isGemma,
    sandwichNorms: isGemma,
    embeddingScale: isGemma ? Math.sqrt(hiddenSize) : 1,
    mlpActivation: parseActivation(raw, arch, source),
    attentionScale: isGemma ? 1 / Math.sqrt(queryPreAttnScalar) : 1 / Math.sqrt(headDim),
    // Only Gemma's modeling code reads the soft-capping fields.
    finalLogitSoftcap: isGemma ? raw.final_logit_softcapping ?? null : null,
    // Gemma 3 configs may carry attn_logit_softcapping (a Gemma 2 field), but transformers' Gemma 3
    // attention does not apply it (checked against transformers 5.17 by the gemma3-softcap golden
    // fixture); released Gemma 3 checkpoints set it to null anyway. Follow transformers.
    attnLogitSoftcap: null,
    layerTypes,
    slidingWindow,
    rope,
    ropeLocal,
    bosTokenId: raw.bos_token_id === undefined ? d.bosTokenId : raw.bos_token_id,
    eosTokenIds: eos === null ? [] : Array.isArray(eos) ? eos : [eos],
    torchDtype: parseDtype(raw, source),
  };
}
