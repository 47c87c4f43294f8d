/**
 * The checkpoint side of the golden fixtures: each committed fixture's checkpoint is re-created
 * byte for byte, and our tokenizer agrees with what Python transformers recorded for it. (Logits
 * and greedy ids are compared in golden.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { GOLDEN_DIR, listGoldenFixtures, readGoldenFixture, regenerateFixtureCheckpoint, type GoldenFixture } from '../helpers/golden.js';
import { TINY_VARIANTS, writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'sf-golden-ckpt-'));
}

const fixtures = listGoldenFixtures();

test('golden fixtures cover every tiny variant', { skip: fixtures.length === 0 ? `no fixtures in ${GOLDEN_DIR} yet` : false }, () => {
  const variants = new Set(fixtures.map((f) => readGoldenFixture(f).variant));
  assert.deepEqual([...variants].sort(), TINY_VARIANTS.map((v) => v.name).sort());
});

for (const file of fixtures) {
  test(`golden ${file.split('/').pop()}: checkpoint re-created byte for byte; tokenizer agrees with transformers`, () => {
    const fx = readGoldenFixture(file);
    const dir = tempDir();
    try {
      regenerateFixtureCheckpoint(fx, dir);
      // fx.load_warnings is for people reading the fixture; make_golden.py already refused to write
      // one when transformers reported missing weights or a loaded value differed from the file.
      const tok = loadCheckpoint(dir).tokenizer;
      if ('error' in fx.tokenizer) assert.fail(`transformers could not load the tiny tokenizer: ${fx.tokenizer.error}`);
      const t = fx.tokenizer as Exclude<GoldenFixture['tokenizer'], { error: string }>;
      assert.deepEqual(tok.encode(t.text), t.ids);
      assert.deepEqual(tok.encode(t.text, { addSpecialTokens: true }), t.ids_with_special_tokens);
      assert.equal(tok.decode(t.ids), t.decoded);
      assert.equal(tok.renderChat([{ role: 'user', content: t.chat_message }]), t.chat_rendered);
      assert.deepEqual(tok.encodeUserPrompt(t.chat_message), t.chat_ids);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('regenerateFixtureCheckpoint catches a writer that drifted', () => {
  const dir = tempDir();
  try {
    // A fixture shaped like make_golden.py's, carrying the hashes of today's writer.
    const variant = TINY_VARIANTS.find((v) => v.name === 'llama-bf16-sharded')!;
    const probe = join(dir, 'probe');
    const written = writeTinyCheckpoint(probe, variant.arch, variant.options);
    const files = [...written.weightFiles].sort();
    const hash = (bufs: Buffer[]) => bufs.reduce((h, b) => h.update(b), createHash('sha256')).digest('hex');
    const perFile = Object.fromEntries(files.map((f) => [f, hash([readFileSync(join(probe, f))])]));
    const fixture = {
      format: 'sparse-frontier-golden', format_version: 1, arch: variant.arch, variant: variant.name,
      transformers_version: 'n/a', torch_version: 'n/a', input_ids: [1, 2], logits: [[0, 0], [0, 0]],
      greedy_ids: [], greedy_prefix_ids: [1], greedy_ids_from_prefix: [], generate_ids: [], generate_ids_from_prefix: [],
      generate_matches_greedy: true, weights_sha256: hash(files.map((f) => readFileSync(join(probe, f)))),
      weights_sha256_per_file: perFile, tokenizer: { error: 'not recorded' }, load_warnings: [],
    };
    const path = join(dir, 'fx.json');
    writeFileSync(path, JSON.stringify(fixture));
    const fx = readGoldenFixture(path);
    regenerateFixtureCheckpoint(fx, join(dir, 'same'));

    const drifted = { ...fx, weights_sha256_per_file: { ...perFile, [files[1]]: '0'.repeat(64) } };
    assert.throws(() => regenerateFixtureCheckpoint(drifted, join(dir, 'drift')), /model-00002-of-00002\.safetensors hashes to [0-9a-f]{64}, the fixture's was 0{64}; the tiny checkpoint writer changed/);
    assert.throws(() => regenerateFixtureCheckpoint({ ...fx, variant: 'falcon' }, join(dir, 'x')), /variant "falcon" is not one of TINY_VARIANTS/);

    writeFileSync(path, JSON.stringify({ ...fixture, logits: [[0, 0]] }));
    assert.throws(() => readGoldenFixture(path), /1 logits rows for 2 input ids/);
    writeFileSync(path, JSON.stringify({ ...fixture, weights_sha256: 'abc' }));
    assert.throws(() => readGoldenFixture(path), /field "weights_sha256"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
