/**
 * JSON text as Python's json module writes HF configs: fields that are floats in transformers'
 * config classes keep a decimal point even when integral (10000.0, not 10000), so strict type
 * checks on the Python side see a float.
 */

/** Keys whose values are floats in transformers' config classes. */
const FLOAT_KEYS = new Set([
  'rope_theta',
  'factor',
  'low_freq_factor',
  'high_freq_factor',
  'rms_norm_eps',
  'initializer_range',
  'attention_dropout',
  'rope_local_base_freq',
  'final_logit_softcapping',
  'attn_logit_softcapping',
  'temperature',
  'top_p',
]);

function render(value: unknown, key: string | null, indent: string): string {
  const inner = `${indent}  `;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`cannot write non-finite number for ${key}`);
    return key !== null && FLOAT_KEYS.has(key) && Number.isInteger(value) ? value.toFixed(1) : JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => inner + render(v, key, inner)).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return '{}';
    return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${render(v, k, inner)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

/** Pretty-printed JSON (2-space indent, trailing newline) with floats written as floats. */
export function toPythonStyleJson(value: unknown): string {
  return `${render(value, null, '')}\n`;
}
