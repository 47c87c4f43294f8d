import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseModelConfig } from '../../src/engine/config.js';
import { toClassicDialect } from '../helpers/config-dialects.js';
import { TINY_VARIANTS, tinyConfigJson } from '../helpers/tiny-checkpoint.js';
import { TINY_EOS_ID } from '../helpers/tiny-tokenizer.js';

for (const v of TINY_VARIANTS) {
  test(`${v.name}: transformers 5 and classic dialects parse to the same ModelConfig`, () => {
    const modern = tinyConfigJson(v.arch, v.options);
    const classic = toClassicDialect(modern);
    assert.ok(!('rope_parameters' in classic) && 'rope_theta' in classic, 'rewritten into the classic dialect');
    assert.deepEqual(parseModelConfig(classic), parseModelConfig(modern));
  });
}

test('tiny llama: every field, and llama3 / linear RoPE scaling', () => {
  const c = parseModelConfig(tinyConfigJson('llama'));
  assert.equal(c.architecture, 'llama');
  assert.equal(c.hfArchitecture, 'LlamaForCausalLM');
  assert.deepEqual(
    [c.vocabSize, c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim],
    [300, 64, 128, 2, 4, 2, 16],
  );
  assert.equal(c.attentionScale, 1 / 4);
  assert.deepEqual(c.layerTypes, ['full', 'full']);
  assert.equal(c.slidingWindow, null);
  assert.deepEqual(c.rope, { theta: 10000, scaling: { kind: 'none' } });
  assert.equal(c.ropeLocal, c.rope);
  assert.deepEqual([c.attentionBias, c.qkNorm, c.normPlusOne, c.sandwichNorms, c.embeddingScale], [false, false, false, false, 1]);
  assert.equal(c.mlpActivation, 'silu');
  assert.deepEqual([c.finalLogitSoftcap, c.attnLogitSoftcap], [null, null]);
  assert.equal(c.tieWordEmbeddings, false);
  assert.deepEqual(c.eosTokenIds, [TINY_EOS_ID]);
  assert.equal(c.torchDtype, 'float32');

  const l3 = parseModelConfig(tinyConfigJson('llama', { ropeScaling: 'llama3' }));
  assert.deepEqual(l3.rope.scaling, { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 });
  const lin = parseModelConfig(tinyConfigJson('llama', { ropeScaling: 'linear' }));
  assert.deepEqual(lin.rope.scaling, { kind: 'linear', factor: 2 });
});

test('tiny qwen2 / qwen3 / mistral / gemma3: family-specific fields', () => {
  const q2 = parseModelConfig(tinyConfigJson('qwen2'));
  assert.deepEqual([q2.attentionBias, q2.qkNorm, q2.tieWordEmbeddings, q2.slidingWindow], [true, false, true, null]);
  const q3 = parseModelConfig(tinyConfigJson('qwen3'));
  assert.deepEqual([q3.attentionBias, q3.qkNorm, q3.normPlusOne], [false, true, false]);
  const m = parseModelConfig(tinyConfigJson('mistral'));
  assert.deepEqual(m.layerTypes, ['sliding', 'sliding']);
  assert.equal(m.slidingWindow, 6);

  const g = parseModelConfig(tinyConfigJson('gemma3', { numLayers: 3, finalLogitSoftcap: 3, attnLogitSoftcap: 5 }));
  assert.equal(g.architecture, 'gemma3');
  assert.deepEqual(g.layerTypes, ['sliding', 'full', 'sliding']);
  assert.equal(g.slidingWindow, 4);
  assert.equal(g.attentionScale, 1 / Math.sqrt(24), 'query_pre_attn_scalar^-0.5, not head_dim^-0.5');
  assert.equal(g.embeddingScale, 8);
  assert.deepEqual([g.qkNorm, g.normPlusOne, g.sandwichNorms, g.tieWordEmbeddings], [true, true, true, true]);
  assert.equal(g.mlpActivation, 'gelu_tanh');
  // transformers' Gemma 3 attention ignores attn_logit_softcapping (golden gemma3-softcap fixture); the final cap applies.
  assert.deepEqual([g.finalLogitSoftcap, g.attnLogitSoftcap], [3, null]);
  assert.deepEqual(g.rope, { theta: 1_000_000, scaling: { kind: 'none' } });
  assert.deepEqual(g.ropeLocal, { theta: 10000, scaling: { kind: 'none' } });
});

// Shaped like the published config.json files (classic dialect), trimmed to what matters.
const LLAMA_31_8B = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 14336,
  num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256,
  max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000.0, torch_dtype: 'bfloat16',
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], tie_word_embeddings: false, attention_bias: false, mlp_bias: false,
};
const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864,
  num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936,
  max_position_embeddings: 32768, max_window_layers: 21, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
  sliding_window: 32768, use_sliding_window: false, tie_word_embeddings: true, torch_dtype: 'bfloat16', eos_token_id: 151645,
};
const GEMMA3_1B = {
  architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', hidden_size: 1152, intermediate_size: 6912,
  num_hidden_layers: 26, num_attention_heads: 4, num_key_value_heads: 1, head_dim: 256, vocab_size: 262144,
  max_position_embeddings: 32768, query_pre_attn_scalar: 256, rope_theta: 1000000, rope_local_base_freq: 10000,
  rope_scaling: null, sliding_window: 512, sliding_window_pattern: 6, final_logit_softcapping: null,
  attn_logit_softcapping: null, hidden_activation: 'gelu_pytorch_tanh', rms_norm_eps: 1e-6, torch_dtype: 'bfloat16',
  bos_token_id: 2, eos_token_id: [1, 106],
};
// Gemma 3 4B: a multimodal config whose text_config leaves most fields to the defaults.
const GEMMA3_4B = {
  architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3', torch_dtype: 'bfloat16', eos_token_id: [1, 106],
  text_config: { hidden_size: 2560, intermediate_size: 10240, model_type: 'gemma3_text', num_hidden_layers: 34, rope_scaling: { factor: 8.0, rope_type: 'linear' }, sliding_window: 1024 },
  vision_config: { model_type: 'siglip_vision_model', hidden_size: 1152 },
};

test('published-style classic configs: llama 3.1, qwen2.5, gemma 3 1B, gemma 3 4B (text part)', () => {
  const l = parseModelConfig(LLAMA_31_8B);
  assert.deepEqual(l.rope, { theta: 500000, scaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } });
  assert.equal(l.headDim, 128);
  assert.deepEqual(l.eosTokenIds, [128001, 128008, 128009]);
  assert.equal(l.torchDtype, 'bfloat16');

  const q = parseModelConfig(QWEN25_05B);
  assert.equal(q.headDim, 64);
  assert.equal(q.slidingWindow, null, 'use_sliding_window false disables the window');
  assert.ok(q.layerTypes.every((t) => t === 'full'));
  assert.equal(q.tieWordEmbeddings, true);
  // With use_sliding_window, layers from max_window_layers on slide.
  const qs = parseModelConfig({ ...QWEN25_05B, use_sliding_window: true });
  assert.equal(qs.slidingWindow, 32768);
  assert.deepEqual([qs.layerTypes[20], qs.layerTypes[21], qs.layerTypes[23]], ['full', 'sliding', 'sliding']);

  const g = parseModelConfig(GEMMA3_1B);
  assert.equal(g.layerTypes.length, 26);
  assert.deepEqual(g.layerTypes.slice(0, 7), ['sliding', 'sliding', 'sliding', 'sliding', 'sliding', 'full', 'sliding']);
  assert.equal(g.layerTypes.filter((t) => t === 'full').length, 4);
  assert.equal(g.attentionScale, 1 / 16);
  assert.equal(g.embeddingScale, Math.sqrt(1152));
  assert.deepEqual(g.ropeLocal, { theta: 10000, scaling: { kind: 'none' } });

  const g4 = parseModelConfig(GEMMA3_4B);
  assert.equal(g4.hfArchitecture, 'Gemma3ForConditionalGeneration');
  assert.deepEqual([g4.numHeads, g4.numKvHeads, g4.headDim, g4.vocabSize], [8, 4, 256, 262208], 'Gemma3TextConfig defaults');
  assert.deepEqual(g4.rope, { theta: 1_000_000, scaling: { kind: 'linear', factor: 8 } });
  assert.deepEqual(g4.ropeLocal, { theta: 10000, scaling: { kind: 'none' } }, 'scaling applies to global layers only');
  assert.equal(g4.slidingWindow, 1024);
  assert.deepEqual(g4.eosTokenIds, [1, 106], 'token ids from the outer config');
  assert.equal(g4.torchDtype, 'bfloat16');
});

test('defaults follow transformers: mistral window 4096 unless null, qwen3 head_dim 128, legacy rope_scaling "type"', () => {
  const base = { model_type: 'mistral', hidden_size: 256, num_attention_heads: 8, num_key_value_heads: 2, num_hidden_layers: 2 };
  assert.equal(parseModelConfig(base).slidingWindow, 4096);
  const v2 = parseModelConfig({ ...base, sliding_window: null });
  assert.equal(v2.slidingWindow, null);
  assert.deepEqual(v2.layerTypes, ['full', 'full']);
  assert.equal(parseModelConfig({ model_type: 'qwen3', hidden_size: 1024, num_attention_heads: 16, num_key_value_heads: 8 }).headDim, 128);
  const legacy = parseModelConfig({ model_type: 'llama', rope_scaling: { type: 'linear', factor: 4 } });
  assert.deepEqual(legacy.rope.scaling, { kind: 'linear', factor: 4 });
  assert.equal(legacy.numKvHeads, legacy.numHeads, 'llama: KV heads default to query heads');
  // Both dialects at once: rope_scaling wins, as in transformers 5 (Gemma: merged into global layers).
  const both = parseModelConfig({ model_type: 'llama', rope_theta: 500000, rope_parameters: { rope_type: 'default', rope_theta: 10000 }, rope_scaling: { rope_type: 'linear', factor: 2 } });
  assert.deepEqual(both.rope, { theta: 500000, scaling: { kind: 'linear', factor: 2 } });
  const g = parseModelConfig({ ...tinyConfigJson('gemma3'), rope_scaling: { rope_type: 'linear', factor: 8 } });
  assert.deepEqual(g.rope, { theta: 1_000_000, scaling: { kind: 'linear', factor: 8 } });
  assert.deepEqual(g.ropeLocal.scaling, { kind: 'none' });
});

function assertConfigError(json: unknown, pattern: RegExp): void {
  assert.throws(() => parseModelConfig(json, '/ckpt/config.json'), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `ConfigError, got ${String(e)}`);
    assert.match(e.message, /^\/ckpt\/config\.json: /, 'names the file');
    assert.match(e.message, pattern);
    return true;
  });
}

test('malformed configs: errors name the file and the field', () => {
  const ok = tinyConfigJson('llama');
  assertConfigError({ ...ok, hidden_size: '64' }, /field "hidden_size": .*expected number/);
  assertConfigError({ ...ok, num_hidden_layers: 0 }, /field "num_hidden_layers"/);
  assertConfigError({ ...ok, num_key_value_heads: 3 }, /"num_key_value_heads" = 3 does not divide num_attention_heads = 4/);
  assertConfigError({ ...ok, rope_parameters: { rope_type: 'llama3', rope_theta: 10000, factor: 8 } }, /missing field "rope_parameters.low_freq_factor"/);
  assertConfigError({ ...ok, rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 4 } }, /"rope_parameters.rope_type" = "yarn" is not supported/);
  assertConfigError({ ...ok, hidden_act: 'relu2' }, /field "hidden_act" = "relu2" is not supported/);
  assertConfigError({ ...tinyConfigJson('gemma3'), layer_types: ['sliding_attention'] }, /"layer_types" has 1 entries but num_hidden_layers is 2/);
  assertConfigError({ ...tinyConfigJson('gemma3'), layer_types: ['sliding_attention', 'global'] }, /field "layer_types\[1\]"/);
  assertConfigError({ ...GEMMA3_4B, text_config: undefined }, /missing field "text_config"/);
  assertConfigError({ ...GEMMA3_4B, text_config: { ...GEMMA3_4B.text_config, hidden_size: -1 } }, /field "text_config.hidden_size"/);
  assertConfigError({ ...ok, attention_bias: true }, /"attention_bias" = true is not supported for llama/);
  assertConfigError([1, 2], /expected a JSON object/);
});

test('unknown architecture: the error names it and lists the supported ones', () => {
  assertConfigError({ model_type: 'phi3', architectures: ['Phi3ForCausalLM'] }, /unsupported architecture: model_type "phi3"; supported model types: llama, qwen2, qwen3, mistral, gemma3_text/);
  assertConfigError({ architectures: ['GPT2LMHeadModel'] }, /unsupported architecture: architectures \["GPT2LMHeadModel"\]/);
  assertConfigError({ hidden_size: 64 }, /missing field "model_type"/);
  // architectures alone is enough when it names a supported class.
  assert.equal(parseModelConfig({ architectures: ['Qwen3ForCausalLM'] }).architecture, 'qwen3');
});
