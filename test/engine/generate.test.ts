import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TransformerModel } from '../../src/engine/model.js';
import { generateTokens } from '../../src/engine/generate.js';
import { DenseDecode, DensePrefill, densePlan } from '../../src/methods/dense.js';
import { argmax } from '../../src/backends/cpu/ops.js';
import type { CompressCall, DecodeAttention, DecodeCall, HeadCounts, PrefillAttention, PrefillCall } from '../../src/engine/attention.js';
import { achievedSparsity } from '../../src/engine/forward-state.js';
import { ARCHITECTURES, randomTokens, randomWeights, tinyConfig } from './model-fixtures.js';

for (const arch of ARCHITECTURES) {
  test(`${arch}: greedy generation equals step-by-step argmax of full-forward logits`, () => {
    const config = tinyConfig(arch);
    const model = new TransformerModel(config, randomWeights(config, 31));
    const prompt = randomTokens(7, config.vocabSize, 2);
    const [res] = generateTokens(model, [prompt], { maxNewTokens: 8, chunkSize: 3 });
    const V = config.vocabSize;
    const seq = [...prompt];
    for (let i = 0; i < 8; i++) {
      const logits = model.logits(seq, densePlan());
      seq.push(argmax(logits, (seq.length - 1) * V, V));
    }
    assert.deepEqual(res.tokenIds, seq.slice(prompt.length));
    assert.equal(res.generatedTokens, 8);
    assert.equal(res.promptTokens, 7);
    assert.equal(res.stopReason, 'max-new-tokens');
  });
}

test('batched generation equals one-by-one generation (sequences stopping at different steps)', () => {
  const config = tinyConfig('qwen3', { numLayers: 3 });
  const model = new TransformerModel(config, randomWeights(config, 41));
  const prompts = [randomTokens(5, config.vocabSize, 1), randomTokens(11, config.vocabSize, 2), randomTokens(2, config.vocabSize, 3)];
  const single = prompts.map((p) => generateTokens(model, [p], { maxNewTokens: 10 })[0]);
  // Make the second prompt's 4th token a stop token so the batch shrinks mid-way.
  const stop = single[1].tokenIds[3];
  const stopped = prompts.map((p) => generateTokens(model, [p], { maxNewTokens: 10, stopTokenIds: [stop] })[0]);
  const batched = generateTokens(model, prompts, { maxNewTokens: 10, stopTokenIds: [stop] });
  for (let i = 0; i < prompts.length; i++) {
    assert.deepEqual(batched[i].tokenIds, stopped[i].tokenIds, `prompt ${i}`);
    assert.deepEqual(batched[i].counts.decode.attended, stopped[i].counts.decode.attended);
  }
  assert.equal(batched[1].stopReason, 'stop-token');
  assert.equal(batched[1].tokenIds.at(-1), stop);
  assert.ok(batched[1].tokenIds.length <= 4);
});

test('decode counts: dense decode reads every cached key (sparsity 0)', () => {
  const config = tinyConfig('llama');
  const model = new TransformerModel(config, randomWeights(config, 5));
  const [res] = generateTokens(model, [randomTokens(6, config.vocabSize, 9)], { maxNewTokens: 4 });
  // 3 decode steps (the first token comes from prefill) at positions 6, 7, 8: 7 + 8 + 9 keys per head.
  for (let i = 0; i < config.numLayers * config.numHeads; i++) {
    assert.equal(res.counts.decode.attended[i], 24);
    assert.equal(res.counts.prefill.attended[i], 21);
  }
  assert.equal(achievedSparsity(res.counts.decode), 0);
});

class RecordingPrefill implements PrefillAttention {
  readonly id = 'recording-dense';
  private readonly dense = new DensePrefill();
  calls: PrefillCall[] = [];
  queries = new Map<number, number[]>();
  constructor(readonly requiresWholePrompt: boolean) {}
  prefill(call: PrefillCall): HeadCounts {
    this.calls.push({ ...call });
    const list = this.queries.get(call.layer) ?? [];
    list.push(...call.queries);
    this.queries.set(call.layer, list);
    return this.dense.prefill(call);
  }
}

class WindowDecode implements DecodeAttention {
  readonly id = 'window-recording-dense';
  readonly observationWindow = 4;
  private readonly dense = new DenseDecode();
  seen: CompressCall[] = [];
  afterPrefill(call: CompressCall): void {
    this.seen.push({ ...call, windowQueries: call.windowQueries.slice() });
  }
  decode(call: DecodeCall): HeadCounts {
    return this.dense.decode(call);
  }
}

test('afterPrefill gets the last `observationWindow` rotated queries of each full layer, across chunks', () => {
  const config = tinyConfig('gemma3', { numLayers: 2 }); // layer 0 sliding, layer 1 full
  const model = new TransformerModel(config, randomWeights(config, 8));
  const prefill = new RecordingPrefill(false);
  const decode = new WindowDecode();
  generateTokens(model, [randomTokens(10, config.vocabSize, 4)], { maxNewTokens: 2, chunkSize: 3, plan: { prefill, decode } });
  // Only the full layer reaches the method objects: 4 chunks (3+3+3+1) there, none for the sliding one.
  assert.deepEqual(prefill.calls.map((c) => c.layer), [1, 1, 1, 1]);
  assert.deepEqual(prefill.calls.map((c) => c.isLastChunk), [false, false, false, true]);
  assert.equal(decode.seen.length, 1);
  const win = decode.seen[0];
  assert.equal(win.layer, 1);
  assert.equal(win.windowLength, 4);
  assert.equal(win.windowStart, 6);
  const row = config.numHeads * config.headDim;
  const all = prefill.queries.get(1)!;
  assert.deepEqual([...win.windowQueries], all.slice(6 * row, 10 * row).map(Math.fround));
});

test('a prefill method that needs the whole prompt gets it in one chunk', () => {
  const config = tinyConfig('llama');
  const model = new TransformerModel(config, randomWeights(config, 8));
  const prefill = new RecordingPrefill(true);
  generateTokens(model, [randomTokens(10, config.vocabSize, 4)], { maxNewTokens: 1, chunkSize: 3, plan: { prefill, decode: new DenseDecode() } });
  assert.deepEqual(prefill.calls.map((c) => [c.layer, c.numQueries, c.queryStart]), [[0, 10, 0], [1, 10, 0]]);
});
