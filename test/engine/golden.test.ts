/**
 * Golden test: logits and greedy ids of the tiny checkpoints (test/helpers/tiny-checkpoint.ts) as
 * Python transformers computed them (test/golden/*.json, tools/oracle/make_golden.py). Our logits must
 * match within 1e-4 relative, |a − b| ≤ 1e-4 · max(1, |b|); greedy ids (full-forward argmax, no EOS
 * stop) must be identical, from the whole input and from its prefix; model.generate's ids (which stop
 * at EOS) must equal our generation with the checkpoint's stop ids.
 * Until test/golden exists the test is skipped; once it exists it must hold at least one fixture.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { TransformerModel } from '../../src/engine/model.js';
import { generateTokens } from '../../src/engine/generate.js';
import { densePlan } from '../../src/methods/dense.js';
import { GOLDEN_DIR, listGoldenFixtures, readGoldenFixture, regenerateFixtureCheckpoint } from '../helpers/golden.js';

const fixtureFiles = listGoldenFixtures();

test('golden fixtures exist once test/golden is committed', { skip: existsSync(GOLDEN_DIR) ? false : 'test/golden not committed yet' }, () => {
  assert.ok(fixtureFiles.length > 0, `${GOLDEN_DIR} holds no *.json fixture`);
});

for (const file of fixtureFiles) {
  test(`golden ${file.split('/').pop()}: logits within 1e-4 of transformers, same greedy and generate ids`, (t) => {
    const fx = readGoldenFixture(file);
    const dir = mkdtempSync(join(tmpdir(), `sf-golden-${fx.variant}-`));
    try {
      regenerateFixtureCheckpoint(fx, dir);
      const ckpt = loadCheckpoint(dir);
      const model = new TransformerModel(ckpt.config, ckpt.weights);
      const V = ckpt.config.vocabSize;
      const logits = model.logits(fx.input_ids, densePlan());
      let worst = 0, where = '';
      fx.logits.forEach((row, p) => {
        assert.equal(row.length, V, `row ${p} has ${row.length} logits, vocab is ${V}`);
        for (let i = 0; i < V; i++) {
          const err = Math.abs(logits[p * V + i] - row[i]) / Math.max(1, Math.abs(row[i]));
          if (err > worst) {
            worst = err;
            where = `position ${p}, token ${i}: ours ${logits[p * V + i]}, transformers ${row[i]}`;
          }
        }
      });
      t.diagnostic(`${fx.variant}: max relative logit error ${worst.toExponential(2)} (kernel ${model.kernel.name})`);
      assert.ok(worst <= 1e-4, `max relative error ${worst.toExponential(2)} at ${where}`);

      const greedy = (prompt: number[], n: number, stops: number[]) =>
        generateTokens(model, [prompt], { maxNewTokens: n, stopTokenIds: stops, chunkSize: 5 })[0].tokenIds;
      assert.deepEqual(greedy(fx.input_ids, fx.greedy_ids.length, []), fx.greedy_ids, 'greedy ids after input_ids');
      assert.deepEqual(greedy(fx.greedy_prefix_ids, fx.greedy_ids_from_prefix.length, []), fx.greedy_ids_from_prefix, 'greedy ids after the prefix');
      assert.deepEqual(greedy(fx.input_ids, 8, ckpt.stopTokenIds), fx.generate_ids, 'model.generate ids (EOS stops)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
