/**
 * Rewrite a transformers 5 config.json (rope_parameters, layer_types, dtype) into the classic
 * dialect most published checkpoints use (rope_theta + rope_scaling, Gemma 3's
 * rope_local_base_freq + sliding_window_pattern, torch_dtype). Tests load both and expect the same
 * model; a config the classic dialect cannot express raises an error saying why.
 */

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** {rope_type, rope_theta, ...scaling} → [theta, rope_scaling or null]. */
function splitRope(dict: Json, field: string): [number, Json | null] {
  const { rope_theta: theta, ...rest } = dict;
  if (typeof theta !== 'number') throw new Error(`${field} has no numeric rope_theta`);
  const kind = rest.rope_type ?? rest.type ?? 'default';
  return [theta, kind === 'default' ? null : rest];
}

/** The smallest p with layer i global exactly when (i + 1) % p == 0, as sliding_window_pattern means. */
function slidingWindowPattern(layerTypes: unknown[]): number {
  for (let p = 1; p <= layerTypes.length + 1; p++) {
    const matches = layerTypes.every((t, i) => t === ((i + 1) % p !== 0 ? 'sliding_attention' : 'full_attention'));
    if (matches) return p;
  }
  throw new Error(`layer_types ${JSON.stringify(layerTypes)} is not expressible as a sliding_window_pattern`);
}

export function toClassicDialect(configJson: Json): Json {
  const { rope_parameters: rope, layer_types: layerTypes, dtype, ...rest } = configJson;
  const out: Json = { ...rest };
  if (dtype !== undefined) out.torch_dtype = dtype;
  const modelType = configJson.model_type;

  if (modelType === 'gemma3_text') {
    if (!isObject(rope) || !isObject(rope.full_attention) || !isObject(rope.sliding_attention)) {
      throw new Error('gemma3 config without per-layer-type rope_parameters');
    }
    const [globalTheta, scaling] = splitRope(rope.full_attention, 'rope_parameters.full_attention');
    const [localTheta, localScaling] = splitRope(rope.sliding_attention, 'rope_parameters.sliding_attention');
    if (localScaling) throw new Error('the classic dialect cannot scale RoPE of sliding layers');
    out.rope_theta = globalTheta;
    out.rope_local_base_freq = localTheta;
    out.rope_scaling = scaling;
    if (Array.isArray(layerTypes)) out.sliding_window_pattern = slidingWindowPattern(layerTypes);
    return out;
  }

  if (rope !== undefined && rope !== null) {
    if (!isObject(rope)) throw new Error('rope_parameters is not an object');
    const [theta, scaling] = splitRope(rope, 'rope_parameters');
    out.rope_theta = theta;
    out.rope_scaling = scaling;
  }
  if (Array.isArray(layerTypes) && (modelType === 'qwen2' || modelType === 'qwen3')) {
    // Classic Qwen configs derive layer types from use_sliding_window and max_window_layers.
    const firstSliding = layerTypes.indexOf('sliding_attention');
    const derivable = firstSliding === -1
      ? !configJson.use_sliding_window || configJson.max_window_layers === layerTypes.length
      : layerTypes.slice(firstSliding).every((t) => t === 'sliding_attention') && configJson.use_sliding_window === true;
    if (!derivable) throw new Error(`layer_types ${JSON.stringify(layerTypes)} cannot be derived from use_sliding_window/max_window_layers`);
    if (firstSliding !== -1) out.max_window_layers = firstSliding;
  }
  return out;
}
