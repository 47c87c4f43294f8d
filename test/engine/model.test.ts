import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TransformerModel } from '../../src/engine/model.js';
import { densePlan } from '../../src/methods/dense.js';
import { achievedSparsity } from '../../src/engine/forward-state.js';
import { ARCHITECTURES, maxRelDiff, randomTokens, randomWeights, tinyConfig } from './model-fixtures.js';

for (const arch of ARCHITECTURES) {
  test(`${arch}: forward gives finite logits that depend on the input`, () => {
    const config = tinyConfig(arch);
    const model = new TransformerModel(config, randomWeights(config, 7));
    const ids = randomTokens(9, config.vocabSize, 3);
    const logits = model.logits(ids, densePlan());
    assert.equal(logits.length, 9 * config.vocabSize);
    assert.ok(logits.every(Number.isFinite));
    const other = model.logits([...ids.slice(0, 8), (ids[8] + 1) % config.vocabSize], densePlan());
    // Only the last position changes when only the last token changes (causality).
    const V = config.vocabSize;
    assert.equal(maxRelDiff(other.subarray(0, 8 * V), logits.subarray(0, 8 * V)), 0);
    assert.ok(maxRelDiff(other.subarray(8 * V), logits.subarray(8 * V)) > 1e-4);
  });

  test(`${arch}: chunked prefill equals one-chunk prefill (logits and KV cache)`, () => {
    const config = tinyConfig(arch);
    const model = new TransformerModel(config, randomWeights(config, 11));
    const ids = randomTokens(13, config.vocabSize, 5);
    const plan = densePlan();
    const whole = model.newSequence(plan);
    const ref = model.prefill(whole, ids, plan, 1000);
    for (const chunk of [1, 3, 4, 5, 12]) {
      const s = model.newSequence(plan);
      const got = model.prefill(s, ids, plan, chunk);
      assert.ok(maxRelDiff(got, ref) < 1e-5, `chunk ${chunk}: logits differ by ${maxRelDiff(got, ref)}`);
      assert.equal(s.position, ids.length);
      for (let l = 0; l < config.numLayers; l++) {
        for (let h = 0; h < config.numKvHeads; h++) {
          const n = ids.length * config.headDim;
          const a = whole.cache.layers[l], b = s.cache.layers[l];
          assert.equal(b.lengths[h], ids.length);
          assert.ok(maxRelDiff(b.keys[h].subarray(0, n), a.keys[h].subarray(0, n)) < 1e-5, `chunk ${chunk} keys l${l} h${h}`);
          assert.ok(maxRelDiff(b.values[h].subarray(0, n), a.values[h].subarray(0, n)) < 1e-5, `chunk ${chunk} values l${l} h${h}`);
        }
      }
      assert.deepEqual(s.counts.prefill.attended, whole.counts.prefill.attended);
    }
  });
}

test('gemma3: a sliding layer attends only to the last `window` keys (hand check)', () => {
  // One sliding layer with window 4: the output at position p depends on tokens p-3..p only.
  const config = tinyConfig('gemma3', { numLayers: 1, layerTypes: ['sliding'], slidingWindow: 4 });
  const model = new TransformerModel(config, randomWeights(config, 21));
  const V = config.vocabSize;
  const ids = randomTokens(10, V, 8);
  const changed = [(ids[0] + 5) % V, ...ids.slice(1)];
  const plan = densePlan();
  const a = model.logits(ids, plan);
  const b = model.logits(changed, plan);
  for (let p = 0; p < 10; p++) {
    const diff = maxRelDiff(a.subarray(p * V, (p + 1) * V), b.subarray(p * V, (p + 1) * V));
    if (p < 4) assert.ok(diff > 1e-5, `position ${p} sees token 0`);
    else assert.equal(diff, 0, `position ${p} must not see token 0`);
  }
  // Counts: query p reads min(p + 1, 4) keys in every head.
  const s = model.newSequence(plan);
  model.prefill(s, ids, plan, 3);
  const expected = [1, 2, 3, 4, 4, 4, 4, 4, 4, 4].reduce((x, y) => x + y, 0);
  for (let h = 0; h < config.numHeads; h++) {
    assert.equal(s.counts.prefill.attended[h], expected);
    assert.equal(s.counts.prefill.dense[h], expected);
  }
  assert.equal(achievedSparsity(s.counts.prefill), 0);
});

test('gemma3: the same weights with a full layer do see token 0 everywhere', () => {
  const config = tinyConfig('gemma3', { numLayers: 1, layerTypes: ['full'], slidingWindow: 4 });
  const model = new TransformerModel(config, randomWeights(config, 21));
  const V = config.vocabSize;
  const ids = randomTokens(10, V, 8);
  const a = model.logits(ids, densePlan());
  const b = model.logits([(ids[0] + 5) % V, ...ids.slice(1)], densePlan());
  assert.ok(maxRelDiff(a.subarray(9 * V), b.subarray(9 * V)) > 1e-5);
});

test('gemma3: embedding scale is rounded to the checkpoint dtype (bf16: sqrt(24) → 4.90625)', () => {
  const f32 = tinyConfig('gemma3', { numLayers: 1, layerTypes: ['full'] });
  const bf16 = { ...f32, torchDtype: 'bfloat16' as const };
  const weights = randomWeights(f32, 3);
  const a = new TransformerModel(f32, weights).logits([4, 5], densePlan());
  const b = new TransformerModel(bf16, weights).logits([4, 5], densePlan());
  assert.ok(maxRelDiff(a, b) > 0, 'the bf16-rounded scale changes the result');
});

test('bad weights: a wrong tensor shape is named in the error', () => {
  const config = tinyConfig('llama');
  const weights = randomWeights(config, 1);
  const t = weights.get('model.layers.1.self_attn.k_proj.weight');
  t.shape = [t.shape[1], t.shape[0]];
  assert.throws(() => new TransformerModel(config, weights), /model\.layers\.1\.self_attn\.k_proj\.weight has shape \[24,16\]/);
});

test('a forward longer than the MLP row block (512) equals chunked prefill', () => {
  const config = tinyConfig('qwen3', { numLayers: 1 });
  const model = new TransformerModel(config, randomWeights(config, 13));
  const ids = randomTokens(530, config.vocabSize, 6);
  const plan = densePlan();
  const V = config.vocabSize;
  const all = model.logits(ids, plan);
  const s = model.newSequence(plan);
  const last = model.prefill(s, ids, plan, 100);
  assert.ok(maxRelDiff(last, all.subarray(529 * V)) < 1e-5);
});
