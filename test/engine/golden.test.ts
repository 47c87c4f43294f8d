/**
 * Golden test: logits and greedy ids of the tiny checkpoints (test/helpers/tiny-checkpoint.ts) as
 * Python transformers computed them, stored in test/golden/*.json with fields
 * {arch, variant, input_ids, logits [positions × vocab], greedy_ids, weights_sha256}.
 * Our logits must match within 1e-4 relative: |a − b| ≤ 1e-4 · max(1, |b|).
 * Until the folder exists the test is skipped; once it exists it must hold at least one fixture.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { TransformerModel } from '../../src/engine/model.js';
import { generateTokens } from '../../src/engine/generate.js';
import { densePlan } from '../../src/methods/dense.js';
import { TINY_VARIANTS, writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

interface GoldenFixture {
  arch: string;
  variant: string;
  input_ids: number[];
  logits: number[][];
  greedy_ids: number[];
  weights_sha256: string;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found');
    dir = up;
  }
  return dir;
}

const goldenDir = join(repoRoot(), 'test', 'golden');
const fixtureFiles = existsSync(goldenDir) ? readdirSync(goldenDir).filter((f) => f.endsWith('.json')).sort() : [];

test('golden fixtures exist once test/golden is committed', { skip: existsSync(goldenDir) ? false : 'test/golden not committed yet' }, () => {
  assert.ok(fixtureFiles.length > 0, `${goldenDir} holds no *.json fixture`);
});

const sha256 = (bytes: Buffer | Buffer[]): string => {
  const h = createHash('sha256');
  for (const b of Array.isArray(bytes) ? bytes : [bytes]) h.update(b);
  return h.digest('hex');
};

for (const file of fixtureFiles) {
  test(`golden ${file}: logits within 1e-4 of transformers, same greedy ids`, () => {
    const fx = JSON.parse(readFileSync(join(goldenDir, file), 'utf8')) as GoldenFixture;
    const variant = TINY_VARIANTS.find((v) => v.name === fx.variant);
    assert.ok(variant, `fixture variant "${fx.variant}" is not one of TINY_VARIANTS`);
    assert.equal(variant.arch, fx.arch);
    const dir = mkdtempSync(join(tmpdir(), `sf-golden-${fx.variant}-`));
    try {
      const written = writeTinyCheckpoint(dir, variant.arch, variant.options);
      // The fixture must come from the very weights we wrote: accept the hash of the single file,
      // or of the shards concatenated in file order.
      const files = written.weightFiles.map((f) => readFileSync(join(dir, f)));
      const hashes = new Set([sha256(files), ...files.map((f) => sha256(f))]);
      assert.ok(hashes.has(fx.weights_sha256), `weights differ from the fixture's (${fx.weights_sha256} not in ${[...hashes].join(', ')})`);

      const ckpt = loadCheckpoint(dir);
      const model = new TransformerModel(ckpt.config, ckpt.weights);
      const V = ckpt.config.vocabSize;
      const logits = model.logits(fx.input_ids, densePlan());
      assert.equal(fx.logits.length, fx.input_ids.length, 'one logits row per input position');
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
      assert.ok(worst <= 1e-4, `max relative error ${worst.toExponential(2)} at ${where}`);

      // greedy_ids may or may not repeat the prompt; compare the generated part, no early stop.
      const prompt = fx.input_ids;
      const startsWithPrompt = fx.greedy_ids.length > prompt.length && prompt.every((id, i) => fx.greedy_ids[i] === id);
      const expected = startsWithPrompt ? fx.greedy_ids.slice(prompt.length) : fx.greedy_ids;
      const [res] = generateTokens(model, [prompt], { maxNewTokens: expected.length, stopTokenIds: [] });
      assert.deepEqual(res.tokenIds, expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
