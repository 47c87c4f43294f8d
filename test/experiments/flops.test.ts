import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type FlopsModelShape, causalPairs, densePrefillPairs, denseDecodePairs, exampleFlops, parameterCounts,
} from '../../src/experiments/flops.js';

// hidden 8, 2 query heads and 1 KV head of dim 4, MLP 16, vocab 10; layer 0 sliding (window 3), layer 1 full.
const tiny: FlopsModelShape = {
  vocabSize: 10, hiddenSize: 8, intermediateSize: 16, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 4,
  layerTypes: ['sliding', 'full'], slidingWindow: 3, tieWordEmbeddings: true,
};

test('parameter counts by hand: q 64 + k 32 + v 32 + o 64 per layer, MLP 384, LM head 80', () => {
  const p = parameterCounts(tiny);
  assert.equal(p.attentionPerLayer, 192);
  assert.equal(p.mlpPerLayer, 384);
  assert.equal(p.layers, 1152);
  assert.equal(p.lmHead, 80);
  assert.equal(p.nonEmbedding, 1232);
  assert.equal(p.stored, 80 + 1152, 'tied head is stored once');
});

test('causal pair counts: triangle, and windowed rows capped at w', () => {
  assert.equal(causalPairs(5, null), 15);
  assert.equal(causalPairs(5, 3), 1 + 2 + 3 + 3 + 3);
  assert.equal(causalPairs(5, 10), 15);
  assert.equal(causalPairs(0, null), 0);
  assert.equal(densePrefillPairs(tiny, 5), (15 + 12) * 2);
  // Decode 2 steps after 5 prompt tokens: contexts of 6 and 7 keys; sliding layer reads 3 each.
  assert.equal(denseDecodePairs(tiny, 5, 2), (6 + 7 + 3 + 3) * 2);
});

test('dense example FLOPs equal the hand computation', () => {
  const f = exampleFlops(tiny, { inputTokens: 5, outputTokens: 3 });
  assert.equal(f.prefill.linear, 2 * 1152 * 5 + 2 * 80); // LM head only for the last prompt token
  assert.equal(f.prefill.attention, 4 * 4 * 54);
  assert.equal(f.prefill.estimation, 0);
  assert.equal(f.decode.linear, 2 * 1232 * 2); // 3 outputs: the first from prefill logits, 2 decode passes
  assert.equal(f.decode.attention, 4 * 4 * 38);
  assert.equal(f.total, 11680 + 864 + 4928 + 608);
});

test('sparse FLOPs use the attended pairs and add the estimation cost', () => {
  const f = exampleFlops(tiny, { inputTokens: 5, outputTokens: 3, prefillAttendedPairs: 27, prefillEstimationFlops: 100, decodeAttendedPairs: 19 });
  assert.equal(f.prefill.attention, 4 * 4 * 27);
  assert.equal(f.prefill.estimation, 100);
  assert.equal(f.prefill.total, 11680 + 432 + 100);
  assert.equal(f.decode.attention, 4 * 4 * 19);
});

test('dense prefill attention approaches 2·L·H·d·n² for long prompts', () => {
  const full: FlopsModelShape = { ...tiny, layerTypes: ['full', 'full'], slidingWindow: null };
  const n = 100_000;
  const f = exampleFlops(full, { inputTokens: n, outputTokens: 1 });
  const approx = 2 * 2 * 2 * 4 * n * n;
  assert.ok(Math.abs(f.prefill.attention / approx - 1) < 1e-4);
  assert.equal(f.decode.total, 0, 'one output token needs no decode pass');
});
