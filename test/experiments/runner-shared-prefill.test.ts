/**
 * Sharing one dense prefill among dense and the decode-phase configurations of an example must not
 * change any result: the same grid run with sharing on and off records identical outputs, scores,
 * pair counts (per layer and head), FLOPs and token counts. Windows of different lengths (SnapKV
 * with W = 16 next to Ada-SnapKV's default 256, clamped to the prompt) and a chunked prefill are
 * both exercised, on llama and on gemma3 (sliding layers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResultsDb } from '../../src/experiments/results-db.js';
import { runExperiment } from '../../src/experiments/runner.js';
import { parseExperimentSpec } from '../../src/experiments/spec.js';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { generateTokens } from '../../src/engine/generate.js';
import { TransformerModel } from '../../src/engine/model.js';
import { createAttentionPlan } from '../../src/methods/index.js';
import { densePlan } from '../../src/methods/dense.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { echoGetTask } from './echo-task.js';

interface Row {
  config_key: string; example_index: number; output: string; score: number | null; input_tokens: number; output_tokens: number;
  prefill_attended_pairs: number; prefill_dense_pairs: number; decode_attended_pairs: number; decode_dense_pairs: number;
  flops_total: number; head_detail_json: string; prompt_hash: string;
}

function rows(dir: string): Row[] {
  const db = ResultsDb.openFile(join(dir, 'results.sqlite'), { readonly: true });
  const out = db.db.prepare(`SELECT config_key, example_index, output, score, input_tokens, output_tokens,
    prefill_attended_pairs, prefill_dense_pairs, decode_attended_pairs, decode_dense_pairs, flops_total, head_detail_json, prompt_hash
    FROM examples ORDER BY config_key, example_index`).all() as Row[];
  db.close();
  return out;
}

for (const arch of ['llama', 'gemma3'] as const) {
  test(`${arch}: sharing the dense prefill gives the same records as prefilling per configuration`, async () => {
    const root = mkdtempSync(join(tmpdir(), `sf-share-${arch}-`));
    const modelDir = join(root, 'tiny');
    writeTinyCheckpoint(modelDir, arch);
    const spec = parseExperimentSpec({
      models: [{ path: modelDir, name: 'tiny' }], backend: 'cpu', tasks: ['echo'], lengths: [96], sparsities: [0.5],
      methods: [
        'block_sparse', 'quest', 'sink_local_decode', 'ada_snapkv',
        { name: 'snapkv', params: { observationWindow: 16, localWindow: 8 } },
      ],
      examples: 2, generation: { maxNewTokens: 6 }, chunkSize: 32,
    });
    const on = join(root, 'on'), off = join(root, 'off');
    const a = await runExperiment({ dir: on, spec, getTask: echoGetTask, sharePrefill: true });
    const b = await runExperiment({ dir: off, spec, getTask: echoGetTask, sharePrefill: false });
    assert.equal(a.recorded, 12);
    assert.equal(b.recorded, 12);
    const ra = rows(on), rb = rows(off);
    assert.equal(ra.length, 12);
    assert.deepEqual(ra, rb);
    // The comparison has teeth: the decode methods really differ from dense here.
    const decodeSparse = ra.filter((r) => r.decode_attended_pairs < r.decode_dense_pairs);
    assert.ok(decodeSparse.length >= 6, `${decodeSparse.length} decode-sparse records`);
  });
}

test('a fork is the sequence its own prefill would have made; forks refuse what they cannot copy', () => {
  const root = mkdtempSync(join(tmpdir(), 'sf-fork-'));
  writeTinyCheckpoint(root, 'llama');
  const ckpt = loadCheckpoint(root);
  const model = new TransformerModel(ckpt.config, ckpt.weights);
  const prompt = Array.from({ length: 40 }, (_, i) => 3 + ((i * 11) % 200));
  const snap = () => createAttentionPlan('snapkv', { sparsity: 0.5, params: { observationWindow: 8, localWindow: 4, kernelSize: 3 } });

  const [direct] = generateTokens(model, [prompt], { plan: snap(), maxNewTokens: 5, chunkSize: 16 });

  // A parent keeping 12 prompt queries per layer (the longest window of its forks).
  const parent = model.newSequence(createAttentionPlan('snapkv', { sparsity: 0.5, params: { observationWindow: 12 } }));
  const logits = model.prefill(parent, prompt, densePlan(), 16);
  const plan = snap();
  const child = parent.fork(plan.decode.observationWindow);
  assert.equal(child.cache.layers[0].length, 40);
  model.finishPrefill(child, plan);
  assert.ok(child.cache.layers[0].length < 40, 'snapkv evicted in the copy');
  assert.equal(parent.cache.layers[0].length, 40, 'the parent cache is untouched');
  const steps: number[] = [];
  let next = logits.indexOf(Math.max(...logits));
  for (let t = 0; t < 5; t++) {
    steps.push(next);
    if (steps.length === 5) break; // generateTokens stops without decoding the last token
    const [l] = model.decodeStep([child], [next], plan);
    next = l.indexOf(Math.max(...l));
  }
  assert.deepEqual(steps, direct.tokenIds);
  assert.deepEqual([...child.counts.decode.attended], [...direct.counts.decode.attended]);

  assert.throws(() => parent.fork(20), /keeps 12 prompt queries, the fork needs 20/);
  const quest = createAttentionPlan('quest', { sparsity: 0.5 });
  const q = parent.fork(0);
  model.finishPrefill(q, quest);
  model.decodeStep([q], [5], quest);
  assert.throws(() => q.cache.clone(), /holds method state \(quest\)/);
  assert.throws(() => model.finishPrefill(q, quest), /already ran/);
});
