/**
 * A checkpoint directory in Hugging Face layout: config.json, model.safetensors (or shards with
 * model.safetensors.index.json), tokenizer.json, tokenizer_config.json, optional
 * generation_config.json. Loading parses the config and the safetensors headers and checks that
 * every tensor the model needs is present with the right shape; tensor data stays on disk until
 * the model reads it.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseModelConfig } from './config.js';
import type { ModelConfig } from './model-config.js';
import { loadGenerationConfig, type GenerationSettings } from './generation-config.js';
import { SafetensorsWeights, type SafetensorsDtype } from './safetensors.js';
import { TextTokenizer } from './tokenizer.js';
import type { WeightStore, WeightTensor } from './weights.js';
import { EMBED_TOKENS, expectedTensors } from './weight-layout.js';

/** The model half of a checkpoint: what running the network needs, no tokenizer. */
export interface CheckpointModel {
  /** Absolute path of the checkpoint directory. */
  dir: string;
  config: ModelConfig;
  weights: WeightStore;
  generation: GenerationSettings;
  /** Ids that end generation: generation_config's EOS ids, else config.json's (plus the tokenizer's EOS in a Checkpoint). */
  stopTokenIds: number[];
  /** Stored dtypes of the tensors the model reads. */
  weightDtypes: SafetensorsDtype[];
}

export interface Checkpoint extends CheckpointModel {
  tokenizer: TextTokenizer;
}

function readJsonFile(path: string, what: string): unknown {
  if (!existsSync(path)) throw new Error(`${what} not found: ${path}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${what} is not valid JSON (${path}): ${(e as Error).message}`);
  }
}

/** A view of a store under other names (multimodal checkpoints keep the language model under a prefix). */
class RenamedWeights implements WeightStore {
  constructor(private readonly inner: WeightStore, private readonly toStored: (name: string) => string, private readonly modelNames: string[]) {}
  names(): string[] {
    return this.modelNames.filter((n) => this.inner.has(this.toStored(n)));
  }
  has(name: string): boolean {
    return this.inner.has(this.toStored(name));
  }
  get(name: string): WeightTensor {
    if (!this.inner.has(this.toStored(name))) throw new Error(`missing tensor in checkpoint: ${name} (stored as ${this.toStored(name)})`);
    return this.inner.get(this.toStored(name));
  }
}

/**
 * Gemma3ForConditionalGeneration stores the language model as language_model.model.* and
 * language_model.lm_head.* (transformers 4) or model.language_model.* and lm_head.* (transformers 5).
 * Returns a mapping from the plain causal-LM names to the stored ones, or null when names are plain.
 */
function languageModelRenaming(store: WeightStore): ((name: string) => string) | null {
  if (store.has(EMBED_TOKENS)) return null;
  if (store.has('language_model.model.embed_tokens.weight')) return (n) => `language_model.${n}`;
  if (store.has('model.language_model.embed_tokens.weight')) return (n) => (n.startsWith('model.') ? `model.language_model.${n.slice(6)}` : n);
  return null;
}

/** Check that every tensor the model reads exists with the shape the config implies. */
function checkTensors(config: ModelConfig, store: WeightStore, locate: (name: string) => { shape: number[] }, dir: string): void {
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const spec of expectedTensors(config)) {
    if (!store.has(spec.name)) {
      missing.push(spec.name);
      continue;
    }
    const shape = locate(spec.name).shape;
    if (shape.length !== spec.shape.length || shape.some((d, i) => d !== spec.shape[i])) {
      wrong.push(`${spec.name} is [${shape}], config implies [${spec.shape}]`);
    }
  }
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, ... (${missing.length} in all)` : '');
    throw new Error(`checkpoint ${dir} lacks tensors the ${config.architecture} model needs: ${shown}`);
  }
  if (wrong.length > 0) {
    throw new Error(`checkpoint ${dir} has tensors whose shapes do not match config.json: ${wrong.slice(0, 5).join('; ')}`);
  }
}

/** Open config, weights and generation settings of `dir` (no tokenizer); errors name the missing path. */
export function openCheckpointModel(dir: string): CheckpointModel {
  const abs = resolve(dir);
  if (!existsSync(abs)) throw new Error(`checkpoint directory not found: ${abs}`);
  if (!statSync(abs).isDirectory()) throw new Error(`checkpoint path is not a directory: ${abs}`);
  const configPath = join(abs, 'config.json');
  const rawConfig = readJsonFile(configPath, 'config.json');
  const config = parseModelConfig(rawConfig, configPath);

  const stored = SafetensorsWeights.openDirectory(abs);
  const renaming = languageModelRenaming(stored);
  const modelNames = expectedTensors(config).map((s) => s.name);
  const weights: WeightStore = renaming ? new RenamedWeights(stored, renaming, modelNames) : stored;
  const toStored = renaming ?? ((n: string) => n);
  checkTensors(config, weights, (n) => stored.location(toStored(n)), abs);
  const weightDtypes = [...new Set(modelNames.filter((n) => weights.has(n)).map((n) => stored.location(toStored(n)).dtype))];

  const generation = loadGenerationConfig(abs, { eosTokenIds: config.eosTokenIds, bosTokenId: config.bosTokenId });
  const stop = generation.eosTokenIds.length > 0 ? generation.eosTokenIds : config.eosTokenIds;
  return { dir: abs, config, weights, generation, stopTokenIds: [...new Set(stop)].sort((a, b) => a - b), weightDtypes };
}

/**
 * Load a checkpoint directory: model files plus tokenizer.json / tokenizer_config.json. The
 * tokenizer's stop ids are merged with the generation config's, on both objects.
 */
export function loadCheckpoint(dir: string): Checkpoint {
  const model = openCheckpointModel(dir);
  const tokenizerPath = join(model.dir, 'tokenizer.json');
  if (!existsSync(tokenizerPath)) throw new Error(`tokenizer.json not found: ${tokenizerPath}`);
  const tokenizer = TextTokenizer.fromDirectory(model.dir);
  const stop = new Set<number>([...model.stopTokenIds, ...tokenizer.stopTokenIds]);
  for (const id of stop) tokenizer.stopTokenIds.add(id);
  return { ...model, tokenizer, stopTokenIds: [...stop].sort((a, b) => a - b) };
}
