import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { TransformerModel } from '../../src/engine/model.js';
import { generateText } from '../../src/engine/generate.js';
import { densePlan } from '../../src/methods/dense.js';
import { TINY_VARIANTS, writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { toClassicDialect } from '../helpers/config-dialects.js';

const root = mkdtempSync(join(tmpdir(), 'sf-model-ckpt-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

for (const variant of TINY_VARIANTS) {
  test(`${variant.name}: a tiny HF checkpoint loads, runs and generates text`, () => {
    const dir = join(root, variant.name);
    writeTinyCheckpoint(dir, variant.arch, variant.options);
    const ckpt = loadCheckpoint(dir);
    const model = new TransformerModel(ckpt.config, ckpt.weights);
    const ids = ckpt.tokenizer.encodeUserPrompt('The value for key abc is 42.');
    const logits = model.logits(ids, densePlan());
    assert.equal(logits.length, ids.length * ckpt.config.vocabSize);
    assert.ok(logits.every(Number.isFinite));
    const [res] = generateText(model, ckpt.tokenizer, ['hello'], { maxNewTokens: 4, stopTokenIds: ckpt.stopTokenIds });
    assert.ok(res.generatedTokens >= 1 && res.generatedTokens <= 4);
    assert.equal(typeof res.text, 'string');
  });
}

for (const name of ['llama-rope-llama3', 'qwen2', 'gemma3-softcap']) {
  test(`${name}: the classic config.json dialect gives identical logits to the transformers 5 one`, () => {
    const variant = TINY_VARIANTS.find((v) => v.name === name)!;
    const dir = join(root, `${name}-dialects`);
    writeTinyCheckpoint(dir, variant.arch, variant.options);
    const ids = [5, 17, 99, 3, 250, 42, 7, 8, 9, 10, 11];
    const modern = loadCheckpoint(dir);
    const a = new TransformerModel(modern.config, modern.weights).logits(ids, densePlan());
    const cfgPath = join(dir, 'config.json');
    const json = JSON.parse(readFileSync(cfgPath, 'utf8'));
    const classic = toClassicDialect(json);
    assert.notDeepEqual(classic, json);
    writeFileSync(cfgPath, JSON.stringify(classic));
    const old = loadCheckpoint(dir);
    const b = new TransformerModel(old.config, old.weights).logits(ids, densePlan());
    assert.deepEqual(b, a);
  });
}
