/**
 * generation_config.json: the stop tokens and decoding defaults a checkpoint ships with. The
 * engine decodes greedily whatever the file says; it reads the file for its EOS ids (chat models
 * often stop on several, e.g. Llama 3's <|eot_id|> besides <|end_of_text|>).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export interface GenerationSettings {
  /** Token ids that end generation (may be empty when neither file names any). */
  eosTokenIds: number[];
  bosTokenId: number | null;
  padTokenId: number | null;
  /** What the file asks for; the engine's own decoding is greedy regardless. */
  doSample: boolean;
  /** True when generation_config.json exists and was read. */
  fromFile: boolean;
}

const tokenId = z.number().int().nonnegative();
const schema = z.looseObject({
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullable().optional(),
  bos_token_id: tokenId.nullable().optional(),
  pad_token_id: tokenId.nullable().optional(),
  do_sample: z.boolean().optional(),
});

/** Parse generation_config.json content; `source` names the file in errors. */
export function parseGenerationConfig(json: unknown, source = 'generation_config.json'): GenerationSettings {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `field "${i.path.join('.') || '(root)'}": ${i.message}`);
    throw new Error(`${source}: ${issues.join('; ')}`);
  }
  const g = parsed.data;
  const eos = g.eos_token_id;
  return {
    eosTokenIds: eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos],
    bosTokenId: g.bos_token_id ?? null,
    padTokenId: g.pad_token_id ?? null,
    doSample: g.do_sample ?? false,
    fromFile: true,
  };
}

/** Read `dir`/generation_config.json if present; otherwise settings from the model config's ids. */
export function loadGenerationConfig(dir: string, fallback: { eosTokenIds: number[]; bosTokenId: number | null }): GenerationSettings {
  const path = join(dir, 'generation_config.json');
  if (!existsSync(path)) {
    return { eosTokenIds: [...fallback.eosTokenIds], bosTokenId: fallback.bosTokenId, padTokenId: null, doSample: false, fromFile: false };
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`generation_config.json is not valid JSON (${path}): ${(e as Error).message}`);
  }
  return parseGenerationConfig(json, path);
}
