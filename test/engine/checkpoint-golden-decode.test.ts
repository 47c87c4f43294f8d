/**
 * The cached path against transformers: prefill the first ids of a golden fixture in small chunks,
 * then decode the rest one token at a time, and compare every step's logits with the fixture's row
 * for that position. This covers chunked prefill, the KV cache and sliding windows during decode
 * (windows 4 and 6 are far shorter than the 24 positions), where greedy ids alone say little (the
 * tied tiny models mostly repeat their last token).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { TransformerModel } from '../../src/engine/model.js';
import { densePlan } from '../../src/methods/dense.js';
import { listGoldenFixtures, readGoldenFixture, regenerateFixtureCheckpoint } from '../helpers/golden.js';

const PREFILL_LENGTH = 7;
const CHUNK = 3;
const TOLERANCE = 1e-4; // |ours − theirs| ≤ TOLERANCE · max(1, |theirs|), as golden.test.ts

for (const file of listGoldenFixtures()) {
  test(`golden ${file.split('/').pop()}: chunked prefill + token-by-token decode match transformers at every position`, () => {
    const fx = readGoldenFixture(file);
    const dir = mkdtempSync(join(tmpdir(), 'sf-golden-decode-'));
    try {
      regenerateFixtureCheckpoint(fx, dir);
      const ckpt = loadCheckpoint(dir);
      const model = new TransformerModel(ckpt.config, ckpt.weights);
      const plan = densePlan();
      const state = model.newSequence(plan);
      const rows: [number, Float32Array][] = [[PREFILL_LENGTH - 1, model.prefill(state, fx.input_ids.slice(0, PREFILL_LENGTH), plan, CHUNK)]];
      for (let p = PREFILL_LENGTH; p < fx.input_ids.length; p++) {
        const [logits] = model.decodeStep([state], [fx.input_ids[p]], plan);
        rows.push([p, logits]);
      }
      let worst = 0;
      let where = '';
      for (const [p, ours] of rows) {
        const theirs = fx.logits[p];
        assert.equal(ours.length, theirs.length, `position ${p}: ${ours.length} logits, fixture has ${theirs.length}`);
        theirs.forEach((t, i) => {
          const err = Math.abs(ours[i] - t) / Math.max(1, Math.abs(t));
          if (err > worst) {
            worst = err;
            where = `position ${p}, token ${i}: ours ${ours[i]}, transformers ${t}`;
          }
        });
      }
      assert.ok(worst <= TOLERANCE, `max relative error ${worst.toExponential(2)} at ${where}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
