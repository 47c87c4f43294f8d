/**
 * The shipped model organism (models/organism): it loads as a standard HF Llama checkpoint, our
 * engine matches transformers' logits and greedy ids on it (test/organism/organism.json, written by
 * tools/oracle/make_golden.py on the GPU machine), and it answers a held-out task example.
 * (The fixture lives here rather than in test/golden/, whose test re-creates tiny checkpoints by name.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { TransformerModel } from '../../src/engine/model.js';
import { generateTokens } from '../../src/engine/generate.js';
import { densePlan } from '../../src/methods/dense.js';
import { getTask } from '../../src/tasks/index.js';
import { extractNiahAnswers } from '../../src/tasks/ruler/niah.js';
import { readGoldenFixture } from '../helpers/golden.js';
import { ORGANISM_DIR, ORGANISM_GOLDEN } from './organism-paths.js';

const ckpt = loadCheckpoint(ORGANISM_DIR);
const model = new TransformerModel(ckpt.config, ckpt.weights);

test('organism: a small GQA Llama, under 40 MB, stopping on its end-of-turn token', () => {
  const c = ckpt.config;
  assert.equal(c.hfArchitecture, 'LlamaForCausalLM');
  assert.ok(c.numKvHeads < c.numHeads, 'GQA: fewer KV heads than query heads');
  assert.equal(c.vocabSize, 4096);
  assert.ok(c.tieWordEmbeddings);
  assert.ok(c.rope.theta >= 500_000, `rope theta ${c.rope.theta} serves 16K contexts`);
  const bytes = statSync(join(ORGANISM_DIR, 'model.safetensors')).size;
  assert.ok(bytes <= 40e6, `model.safetensors is ${bytes} bytes`);
  assert.ok(ckpt.tokenizer.hasChatTemplate);
  assert.deepEqual(ckpt.stopTokenIds, [ckpt.tokenizer.tokenToId('<|end|>')]);
});

test('organism: logits within 1e-4 of transformers, same greedy ids, same tokenizer ids', () => {
  const fx = readGoldenFixture(ORGANISM_GOLDEN);
  const weights = readFileSync(join(ORGANISM_DIR, 'model.safetensors'));
  assert.equal(createHash('sha256').update(weights).digest('hex'), fx.weights_sha256, 'the fixture was made from these weights');
  const V = ckpt.config.vocabSize;
  const logits = model.logits(fx.input_ids, densePlan());
  let worst = 0;
  fx.logits.forEach((row, p) => {
    for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(logits[p * V + i] - row[i]) / Math.max(1, Math.abs(row[i])));
  });
  assert.ok(worst <= 1e-4, `max relative logit error ${worst.toExponential(2)}`);
  const greedy = (prompt: number[], n: number, stops: number[]) =>
    generateTokens(model, [prompt], { maxNewTokens: n, stopTokenIds: stops, chunkSize: 7 })[0].tokenIds;
  assert.deepEqual(greedy(fx.input_ids, fx.greedy_ids.length, []), fx.greedy_ids);
  assert.deepEqual(greedy(fx.greedy_prefix_ids, fx.greedy_ids_from_prefix.length, []), fx.greedy_ids_from_prefix);
  assert.ok(!('error' in fx.tokenizer), 'transformers loaded the tokenizer');
  if (!('error' in fx.tokenizer)) {
    assert.deepEqual(ckpt.tokenizer.encode(fx.tokenizer.text), fx.tokenizer.ids);
    assert.equal(ckpt.tokenizer.renderChat([{ role: 'user', content: fx.tokenizer.chat_message }]), fx.tokenizer.chat_rendered);
    assert.deepEqual(ckpt.tokenizer.encodeUserPrompt(fx.tokenizer.chat_message), fx.tokenizer.chat_ids);
  }
});

/** Greedy reply of our engine to example `index` (seed 43: held out from training) of `task` at `length`. */
function reply(taskName: string, length: number, index: number) {
  const task = getTask(taskName);
  const [example] = task.generate({ tokenizer: ckpt.tokenizer, length, count: 1, firstIndex: index, seed: 43 });
  const [r] = generateTokens(model, [example.inputIds], { maxNewTokens: example.goldLength + 64, stopTokenIds: ckpt.stopTokenIds });
  return { task, example, r, output: ckpt.tokenizer.decode(r.tokenIds, { skipSpecialTokens: true }) };
}

// What the shipped checkpoint can do (docs/organism.md, run 12): it retrieves NIAH values (0.99-1.00 on
// held-out seeds from 1K to 8K under transformers, 0.95 at 16K), tracks VT chains (0.95-1.00 at 2K-8K, 1.00
// at 16K), answers story retrieval (1.00/0.99 at 4K/8K, 0.94 at 16K; a 4K example is too slow for this test
// on our CPU engine) and scores partly on story filtering. These pin that behaviour down on held-out
// examples, as transformers measured it on the GPU machine (run 12's call: predictions.jsonl).
test('organism: a held-out NIAH example (1K) gets all four values right, as under transformers', () => {
  const { task, example, output } = reply('niah', 1024, 0);
  assert.match(output, /^<explanation>\n[^\n]+\n<\/explanation>\n<answer>\n1\. The answer for [a-z0-9-]+ is /, output);
  assert.equal(extractNiahAnswers(output).size, 4, output);
  assert.equal(task.score(example, output).score, 1, output);
});

test('organism: a held-out VT example (2K) names the whole chain, as under transformers', () => {
  const { task, example, output } = reply('vt', 2048, 0);
  assert.equal(output, '<explanation>\nThe value 57762 is held by VAR QNLKR, VAR KNAEQ, VAR MFLYO, VAR BGQTJ, VAR HCUIK.\n' +
    '</explanation>\n<answer>\n QNLKR KNAEQ MFLYO BGQTJ HCUIK\n</answer>');
  assert.equal(task.score(example, output).score, 1, output);
});

test('organism: a held-out story-filtering example (1K) gets the same partial answer as under transformers', () => {
  const { task, example, output } = reply('story_filtering', 1024, 8);
  assert.match(output, /<answer>\n2, 4, 6\n<\/answer>$/, output);
  assert.equal(task.score(example, output).score, 0.2, output);
});
