/**
 * Golden fixtures (test/golden/<variant>.json, written by tools/oracle/make_golden.py from Python
 * transformers): reading them with a schema check, and re-creating the checkpoint a fixture was
 * computed from with a check that its weights hash the same (a writer that drifted would make every
 * comparison meaningless, so it fails loudly instead).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { REPO_ROOT } from './repo-root.js';
import { TINY_VARIANTS, writeTinyCheckpoint, type TinyCheckpoint } from './tiny-checkpoint.js';

const ids = z.array(z.number().int().nonnegative());

const fixtureSchema = z.looseObject({
  format: z.literal('sparse-frontier-golden'),
  format_version: z.literal(1),
  arch: z.string(),
  variant: z.string(),
  transformers_version: z.string(),
  torch_version: z.string(),
  input_ids: ids,
  /** [positions][vocab] */
  logits: z.array(z.array(z.number())),
  /** Greedy tokens after input_ids (no EOS stop). */
  greedy_ids: ids,
  greedy_prefix_ids: ids,
  greedy_ids_from_prefix: ids,
  generate_ids: ids,
  generate_ids_from_prefix: ids,
  generate_matches_greedy: z.boolean(),
  weights_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  weights_sha256_per_file: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
  tokenizer: z.union([
    z.object({ error: z.string() }),
    z.looseObject({
      text: z.string(),
      ids,
      ids_with_special_tokens: ids,
      decoded: z.string(),
      chat_message: z.string(),
      chat_rendered: z.string(),
      chat_ids: ids,
    }),
  ]),
  load_warnings: z.array(z.string()),
});

export type GoldenFixture = z.infer<typeof fixtureSchema>;

export const GOLDEN_DIR = join(REPO_ROOT, 'test', 'golden');

/** Paths of the committed fixtures (empty when test/golden does not exist yet). */
export function listGoldenFixtures(dir = GOLDEN_DIR): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => join(dir, f));
}

/** Read and validate one fixture; errors name the file and the field. */
export function readGoldenFixture(path: string): GoldenFixture {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`golden fixture ${path} is not valid JSON: ${(e as Error).message}`);
  }
  const parsed = fixtureSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `field "${i.path.join('.') || '(root)'}": ${i.message}`);
    throw new Error(`golden fixture ${path}: ${issues.join('; ')}`);
  }
  const fx = parsed.data;
  fx.logits.forEach((row, p) => {
    if (row.length !== fx.logits[0].length) throw new Error(`golden fixture ${path}: logits row ${p} has ${row.length} entries, row 0 has ${fx.logits[0].length}`);
  });
  if (fx.logits.length !== fx.input_ids.length) {
    throw new Error(`golden fixture ${path}: ${fx.logits.length} logits rows for ${fx.input_ids.length} input ids`);
  }
  return fx;
}

function sha256(buffers: Buffer[]): string {
  const h = createHash('sha256');
  for (const b of buffers) h.update(b);
  return h.digest('hex');
}

/**
 * Write the checkpoint `fx` was computed from into `dir` and check its weights hash like the
 * fixture's; throws naming the variant and the differing file when the writer has drifted.
 */
export function regenerateFixtureCheckpoint(fx: GoldenFixture, dir: string): TinyCheckpoint {
  const variant = TINY_VARIANTS.find((v) => v.name === fx.variant);
  if (!variant) throw new Error(`golden fixture variant "${fx.variant}" is not one of TINY_VARIANTS (${TINY_VARIANTS.map((v) => v.name).join(', ')})`);
  if (variant.arch !== fx.arch) throw new Error(`golden fixture ${fx.variant}: arch ${fx.arch}, but TINY_VARIANTS says ${variant.arch}`);
  const written = writeTinyCheckpoint(dir, variant.arch, variant.options);
  const files = [...written.weightFiles].sort();
  const recorded = Object.keys(fx.weights_sha256_per_file).sort();
  if (files.join() !== recorded.join()) {
    throw new Error(`golden fixture ${fx.variant}: the writer now produces weight files [${files}] but the fixture was made from [${recorded}]`);
  }
  const contents = files.map((f) => readFileSync(join(dir, f)));
  files.forEach((f, i) => {
    const got = sha256([contents[i]]);
    if (got !== fx.weights_sha256_per_file[f]) {
      throw new Error(`golden fixture ${fx.variant}: ${f} hashes to ${got}, the fixture's was ${fx.weights_sha256_per_file[f]}; the tiny checkpoint writer changed, regenerate the fixtures (tools/oracle/README.md)`);
    }
  });
  if (sha256(contents) !== fx.weights_sha256) throw new Error(`golden fixture ${fx.variant}: combined weights hash differs from weights_sha256`);
  return written;
}
