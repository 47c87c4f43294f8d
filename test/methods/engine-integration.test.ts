/**
 * Every method plugged into the real engine (tiny random models): s = 0 reproduces dense logits
 * through prefill and decode, and a sparse budget runs end to end with its measured sparsity on the
 * full-attention layers (Gemma 3's sliding layers stay dense).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TransformerModel } from '../../src/engine/model.js';
import { achievedSparsity } from '../../src/engine/forward-state.js';
import { createAttentionPlan, listMethods } from '../../src/methods/index.js';
import { maxRelDiff, randomTokens, randomWeights, tinyConfig } from '../engine/model-fixtures.js';
import type { AttentionPlan } from '../../src/engine/attention.js';

function generate(model: TransformerModel, plan: AttentionPlan, ids: number[], steps: number) {
  const state = model.newSequence(plan);
  const logits = [model.prefill(state, ids, plan, 64)];
  for (let i = 0; i < steps; i++) {
    const last = logits[logits.length - 1];
    let best = 0;
    for (let v = 1; v < last.length; v++) if (last[v] > last[best]) best = v;
    logits.push(model.decodeStep([state], [best], plan)[0]);
  }
  return { logits, state };
}

for (const arch of ['qwen2', 'gemma3'] as const) {
  test(`${arch}: every method runs in the engine; s = 0 matches dense logits`, () => {
    const config = tinyConfig(arch, { numLayers: 2 });
    const model = new TransformerModel(config, randomWeights(config, 3));
    const ids = randomTokens(300, config.vocabSize, 4);
    const dense = generate(model, createAttentionPlan('dense'), ids, 4);
    const fullLayers = config.layerTypes.flatMap((t, l) => (t === 'full' ? [l] : []));
    for (const method of listMethods().filter((m) => m.id !== 'dense')) {
      const same = generate(model, createAttentionPlan(method.id, { sparsity: 0 }), ids, 4);
      for (let i = 0; i < dense.logits.length; i++) {
        assert.ok(maxRelDiff(same.logits[i], dense.logits[i]) < 1e-4, `${method.id} step ${i}`);
      }
      // FlexPrefill's default min_budget (512 columns and diagonals) is the whole of a 300-token prompt.
      const params: Record<string, unknown> = method.id === 'flexprefill' ? { minBudget: 16, approximationSize: 64 }
        : method.id === 'flexprefill_full' ? { blockSize: 32, minBudget: 32 } : {};
      const sparse = generate(model, createAttentionPlan(method.id, { sparsity: 0.7, params }), ids, 4);
      assert.ok(sparse.logits.every((l) => l.every(Number.isFinite)), method.id);
      const phase = method.phase === 'prefill' ? sparse.state.counts.prefill : sparse.state.counts.decode;
      const s = achievedSparsity(phase, fullLayers, config.numHeads);
      // At n = 300 the forced tokens of some methods bind; every method must still skip pairs.
      assert.ok(s > 0.15 && s < 0.75, `${method.id}: achieved ${s}`);
    }
  });
}
