import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint, openCheckpointModel } from '../../src/engine/checkpoint.js';
import { checkpointSummary, countParameters, describeLayerPattern, formatSummaryTable } from '../../src/engine/checkpoint-summary.js';
import { writeSafetensors } from '../../src/engine/safetensors-writer.js';
import { expectedTensors } from '../../src/engine/weight-layout.js';
import { bf16ToF32, f32ToBf16 } from '../../src/engine/float-formats.js';
import { TINY_VARIANTS, tinyConfigJson, tinyTensors, writeTinyCheckpoint, type TinyArch } from '../helpers/tiny-checkpoint.js';
import { TINY_ASSISTANT_ID, TINY_BOS_ID, TINY_EOS_ID, TINY_USER_ID, TINY_VOCAB_SIZE, writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { toPythonStyleJson } from '../helpers/python-json.js';
import { Command } from 'commander';
import { registerInspect } from '../../src/cli/commands/inspect.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'sf-checkpoint-'));
}

const ARCHS: TinyArch[] = ['llama', 'qwen2', 'qwen3', 'mistral', 'gemma3'];

for (const arch of ARCHS) {
  test(`loadCheckpoint: tiny ${arch} loads with every tensor, tokenizer and stop ids`, () => {
    const dir = tempDir();
    try {
      writeTinyCheckpoint(dir, arch);
      const ck = loadCheckpoint(dir);
      assert.equal(ck.config.architecture, arch);
      assert.equal(ck.dir, dir);
      const specs = expectedTensors(ck.config);
      for (const spec of specs) assert.deepEqual(ck.weights.get(spec.name).shape, spec.shape, spec.name);
      assert.equal(ck.weights.has('lm_head.weight'), !ck.config.tieWordEmbeddings);
      assert.deepEqual(ck.stopTokenIds, [TINY_EOS_ID]);
      assert.ok(ck.tokenizer.stopTokenIds.has(TINY_EOS_ID));
      assert.deepEqual(ck.generation.eosTokenIds, [TINY_EOS_ID]);
      assert.deepEqual(ck.weightDtypes, ['F32']);
      // Same values as the writer generated.
      const expected = tinyTensors(tinyConfigJson(arch));
      assert.deepEqual(ck.weights.get(expected[3].name).data, expected[3].data);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('loadCheckpoint: BF16 sharded variant reads the rounded values from both shards', () => {
  const dir = tempDir();
  try {
    const variant = TINY_VARIANTS.find((v) => v.name === 'llama-bf16-sharded')!;
    const written = writeTinyCheckpoint(dir, variant.arch, variant.options);
    assert.equal(written.weightFiles.length, 2);
    const ck = openCheckpointModel(dir);
    assert.deepEqual(ck.weightDtypes, ['BF16']);
    assert.equal(ck.config.torchDtype, 'bfloat16');
    const tensors = tinyTensors(written.configJson);
    for (const t of [tensors[0], tensors[tensors.length - 1]]) assert.deepEqual(ck.weights.get(t.name).data, bf16ToF32(f32ToBf16(t.data)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tiny checkpoint files are byte-identical when written twice', () => {
  const a = tempDir();
  const b = tempDir();
  try {
    for (const d of [a, b]) writeTinyCheckpoint(d, 'gemma3');
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      assert.deepEqual(readFileSync(join(a, f)), readFileSync(join(b, f)), f);
    }
    assert.match(readFileSync(join(a, 'config.json'), 'utf8'), /"rope_theta": 1000000\.0/, 'floats written as Python writes them');
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('tiny tokenizer: encodes, decodes and renders its chat template', () => {
  const dir = tempDir();
  try {
    writeTinyCheckpoint(dir, 'llama');
    const tok = loadCheckpoint(dir).tokenizer;
    const text = 'the key is: 42-abc. Done!\nnext line ünïcode';
    const ids = tok.encode(text);
    assert.ok(ids.every((id) => id >= 0 && id < TINY_VOCAB_SIZE));
    assert.ok(ids.length < new TextEncoder().encode(text).length, 'merges shorten the byte sequence');
    assert.equal(tok.decode(ids), text);
    // Merges: h+e → 257, Ġ+t → 256, Ġt+he → 258 ("Ġ" is the byte-level space).
    assert.deepEqual(tok.encode('the'), [116, 257]);
    assert.deepEqual(tok.encode(' the'), [258]);
    assert.deepEqual(tok.encode('hi', { addSpecialTokens: true }), [TINY_BOS_ID, 104, 105]);
    assert.equal(tok.renderChat([{ role: 'user', content: 'hi there' }]), '<|bos|><|user|>hi there<|eos|><|assistant|>');
    const prompt = tok.encodeUserPrompt('hi there');
    assert.deepEqual(prompt.slice(0, 2), [TINY_BOS_ID, TINY_USER_ID]);
    assert.deepEqual(prompt.slice(-2), [TINY_EOS_ID, TINY_ASSISTANT_ID]);
    assert.equal(tok.decode(prompt, { skipSpecialTokens: true }), 'hi there');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Gemma3ForConditionalGeneration: the language model loads from its prefixed tensors', () => {
  for (const prefix of ['language_model.', 'model.language_model.']) {
    const dir = tempDir();
    try {
      const textConfig = tinyConfigJson('gemma3');
      const tensors = tinyTensors(textConfig);
      const stored = tensors.map((t) => ({
        ...t,
        name: prefix === 'language_model.' ? `language_model.${t.name}` : t.name.replace(/^model\./, 'model.language_model.'),
      }));
      stored.push({ name: 'vision_tower.patch_embedding.weight', shape: [2, 2], data: new Float32Array(4) });
      writeSafetensors(join(dir, 'model.safetensors'), stored);
      const { architectures: _a, model_type: _m, ...text } = textConfig;
      writeFileSync(
        join(dir, 'config.json'),
        toPythonStyleJson({ architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3', text_config: { model_type: 'gemma3_text', ...text }, vision_config: {} }),
      );
      writeTinyTokenizer(dir);
      const ck = loadCheckpoint(dir);
      assert.equal(ck.config.hfArchitecture, 'Gemma3ForConditionalGeneration');
      assert.deepEqual(ck.weights.get('model.layers.1.self_attn.q_norm.weight').data, tensors.find((t) => t.name === 'model.layers.1.self_attn.q_norm.weight')!.data);
      assert.ok(!ck.weights.names().some((n) => n.startsWith('vision_tower')), 'only language-model tensors are listed');
      assert.equal(countParameters(ck.config).total, tensors.reduce((s, t) => s + t.data.length, 0));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('loadCheckpoint errors name the path: missing dir, config.json, weights, tokenizer, tensors, shapes', () => {
  const dir = tempDir();
  try {
    assert.throws(() => loadCheckpoint(join(dir, 'nope')), new RegExp(`checkpoint directory not found: ${join(dir, 'nope')}`));
    assert.throws(() => loadCheckpoint(dir), new RegExp(`config.json not found: ${join(dir, 'config.json')}`));
    writeTinyCheckpoint(dir, 'qwen2');
    writeFileSync(join(dir, 'config.json'), '{ "model_type": ');
    assert.throws(() => loadCheckpoint(dir), /config.json is not valid JSON/);
    writeFileSync(join(dir, 'config.json'), toPythonStyleJson({ ...tinyConfigJson('qwen2'), intermediate_size: 96 }));
    assert.throws(() => loadCheckpoint(dir), /shapes do not match config\.json: model\.layers\.0\.mlp\.gate_proj\.weight is \[128,64\], config implies \[96,64\]/);
    writeFileSync(join(dir, 'config.json'), toPythonStyleJson({ ...tinyConfigJson('qwen2'), tie_word_embeddings: false }));
    assert.throws(() => loadCheckpoint(dir), /lacks tensors the qwen2 model needs: lm_head\.weight/);
    writeFileSync(join(dir, 'config.json'), toPythonStyleJson(tinyConfigJson('qwen2')));
    rmSync(join(dir, 'tokenizer.json'));
    assert.throws(() => loadCheckpoint(dir), new RegExp(`tokenizer.json not found: ${join(dir, 'tokenizer.json')}`));
    assert.equal(openCheckpointModel(dir).config.architecture, 'qwen2', 'the model half needs no tokenizer');
    rmSync(join(dir, 'model.safetensors'));
    assert.throws(() => openCheckpointModel(dir), new RegExp(`no weights in ${dir}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('checkpointSummary: counts, layer pattern, table', () => {
  const config = loadConfigOf('gemma3');
  const s = checkpointSummary(config, ['BF16']);
  // Tied gemma3: embedding 300×64; per layer q 64·64, k,v 32·64 each, o 64·64, norms 4·64 + 2·16, MLP 3·128·64.
  const perLayer = 64 * 64 * 2 + 32 * 64 * 2 + 4 * 64 + 2 * 16 + 3 * 128 * 64;
  assert.deepEqual(s.params, { total: 300 * 64 + 2 * perLayer + 64, embedding: 300 * 64, lmHead: 0, nonEmbedding: 2 * perLayer + 64 });
  assert.equal(s.layerPattern, '1 sliding, 1 full');
  assert.equal(s.contextLength, 256);
  const table = formatSummaryTable(s, '/x');
  assert.match(table, /^checkpoint\s+\/x$/m);
  assert.match(table, /^KV heads\s+2 \(group 2\)$/m);
  assert.match(table, /^dtype\s+float32 in config, stored BF16$/m);

  const gemma1b = Array.from({ length: 26 }, (_, i) => ((i + 1) % 6 !== 0 ? 'sliding' : 'full') as 'sliding' | 'full');
  assert.equal(describeLayerPattern(gemma1b), '(5 sliding, 1 full) × 4, 2 sliding');
  assert.equal(describeLayerPattern(Array(32).fill('full')), '32 full');
});

test('inspect --model DIR prints the summary table (and --json the object)', async () => {
  const dir = tempDir();
  const printed: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  try {
    writeTinyCheckpoint(dir, 'mistral', { dtype: 'F16' });
    process.stdout.write = ((chunk: string) => (printed.push(String(chunk)), true)) as typeof process.stdout.write;
    const run = (args: string[]) => {
      const program = new Command().exitOverride();
      registerInspect(program);
      return program.parseAsync(['node', 'sparse-frontier', ...args]);
    };
    await run(['inspect', '--model', dir]);
    await run(['inspect', '--model', dir, '--json']);
  } finally {
    process.stdout.write = write;
    rmSync(dir, { recursive: true, force: true });
  }
  assert.match(printed[0], /^architecture\s+mistral \(MistralForCausalLM\)$/m);
  assert.match(printed[0], /^layers by type\s+2 sliding$/m);
  assert.match(printed[0], /^sliding window\s+6$/m);
  assert.match(printed[0], /^dtype\s+float16 in config, stored F16$/m);
  const json = JSON.parse(printed[1]);
  assert.equal(json.params.total, countParameters(loadConfigOf('mistral')).total);
});

function loadConfigOf(arch: TinyArch) {
  const dir = tempDir();
  try {
    writeTinyCheckpoint(dir, arch);
    return openCheckpointModel(dir).config;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
