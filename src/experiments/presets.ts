/**
 * Ready-made experiments. `quick` checks the whole pipeline on a CPU in minutes; `paper` is the
 * grid of "The Sparse Frontier" (arXiv 2504.17768) for GPUs.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { listMethods } from '../methods/index.js';
import { type ExperimentSpec, type ExperimentSpecInput, loadExperimentSpec, parseExperimentSpec } from './spec.js';

/** The original's nine tasks, by the names of our task modules (src/tasks). */
export const PAPER_TASKS = [
  'niah', 'vt', 'cwe',
  'qa_squad', 'qa_quality', 'qa_toefl',
  'story_retrieval', 'story_multihop', 'story_filtering',
] as const;

/**
 * Compression ratios k of the paper's sweep (its Table 6: budgets of 70% down to 5% of the context,
 * e.g. Quest token budgets 11472 … 816 at n = 16384); s = 1 − 1/k.
 */
export const PAPER_COMPRESSION_RATIOS = [10 / 7, 10 / 6, 2, 2.5, 10 / 3, 5, 7.5, 10, 15, 20] as const;

/** s = 1 − 1/k rounded to 4 decimals, so configuration keys stay readable. */
export function sparsityOfCompression(k: number): number {
  return Math.round((1 - 1 / k) * 1e4) / 1e4;
}

/** The paper's six methods (its Table 1). */
const PAPER_METHODS = ['vertical_and_slash', 'flexprefill', 'block_sparse', 'snapkv', 'ada_snapkv', 'quest'] as const;

/**
 * The smallest model under `modelsDir`: `organism` when it exists, otherwise the directory whose
 * weights take the fewest bytes. Returns the default path when none is found (the runner then
 * reports the missing directory).
 */
export function smallestLocalModel(modelsDir = 'models'): string {
  const preferred = join(modelsDir, 'organism');
  if (existsSync(join(preferred, 'config.json'))) return preferred;
  if (!existsSync(modelsDir)) return preferred;
  let best: { path: string; bytes: number } | null = null;
  for (const entry of readdirSync(modelsDir)) {
    const dir = join(modelsDir, entry);
    if (!existsSync(join(dir, 'config.json'))) continue;
    const bytes = readdirSync(dir)
      .filter((f) => f.endsWith('.safetensors'))
      .reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
    if (!best || bytes < best.bytes) best = { path: dir, bytes };
  }
  return best?.path ?? preferred;
}

/**
 * Task and lengths of the quick preset: NIAH with one query, the organism's solved task (dense 1.00
 * on held-out seeds from 1K to 8K, docs/organism.md), so the quick run compares methods on a task the
 * model actually does and its verdicts mean something. One query instead of RULER's four keeps the
 * reply at ~85 generated tokens (the explanation, then the answer line) instead of ~265, which keeps
 * `npm run quick` near 4 minutes on 2 cores; the organism answers one-query NIAH as exactly as four
 * (3 of 3 at 1,792 and 2,048 in the run that chose this). Its run-7b weights, trained on four-query
 * NIAH only, go on after the one answer line with `2. The…` until the cap of 90: the score (the first
 * line's value, string match) is unchanged, the decode a few percent longer. Both lengths build with the organism's
 * tokenizer (niah needs ≥ 1,280 with the real tokenizers, `tasks list --measure`).
 */
export const QUICK_TASKS = [{ name: 'niah', params: { numQueries: 1 } }] as const;
/** Results label of the quick task (its name with the parameter, as the runner files it). */
export const QUICK_TASK_LABEL = 'niah[numQueries=1]';
export const QUICK_LENGTHS = [1792, 2048] as const;

/**
 * A CPU smoke test of the whole pipeline (run, analyze, report) in minutes: the smallest local
 * model, one-query NIAH at two short lengths, a few examples, dense plus every registered method at
 * two target sparsities, generation capped a little above the organism's reply (~85 tokens).
 */
export function quickPreset(modelsDir = 'models'): ExperimentSpecInput {
  return {
    name: 'quick',
    models: [smallestLocalModel(modelsDir)],
    backend: 'cpu',
    tasks: QUICK_TASKS.map((t) => ({ name: t.name, params: { ...t.params } })),
    lengths: [...QUICK_LENGTHS],
    sparsities: [0.5, 0.8],
    // Every registered method, each at the two target sparsities.
    methods: listMethods().filter((m) => m.id !== 'dense').map((m) => m.id),
    examples: 3,
    seed: 43,
    generation: { maxNewTokens: 90 },
    chunkSize: 512,
  };
}

/**
 * The paper's grid: Qwen2.5 Instruct 7B/14B/32B/72B, n = 16384, 32768, 65536, 128000 (its Table 6),
 * its nine tasks, 100 examples (seed 43), greedy generation of up to 1024 tokens, ten budgets from
 * 70% to 5% of the context. Every method takes the target sparsity (FlexPrefill reaches it by
 * searching alpha; the paper instead listed (alpha, min_budget) pairs per length). Model directories
 * are expected under `modelsDir`.
 */
export function paperPreset(modelsDir = 'models'): ExperimentSpecInput {
  const sizes = ['7B', '14B', '32B', '72B'];
  return {
    name: 'paper',
    models: sizes.map((s) => ({ path: join(modelsDir, `Qwen2.5-${s}-Instruct`), name: `qwen2.5-${s.toLowerCase()}` })),
    backend: 'cuda',
    tasks: [...PAPER_TASKS],
    lengths: [16384, 32768, 65536, 128000],
    sparsities: PAPER_COMPRESSION_RATIOS.map(sparsityOfCompression),
    methods: [...PAPER_METHODS],
    examples: 100,
    seed: 43,
    generation: { maxNewTokens: 1024 },
    chunkSize: 4096,
  };
}

/**
 * The sparse frontier of the shipped organism on a GPU: its three solved tasks (run 12, docs/organism.md:
 * NIAH 0.99–1.00 at 1K–8K and 0.95 at 16K; variable tracking 0.95–1.00 at 2K–16K; story retrieval
 * 0.94–1.00 at 4K–16K) at 4K, 8K and 16K, every method with a GPU implementation at s = 0.5, 0.8, 0.9
 * and 0.95 (the paper's range up to k = 20), 10 examples. On tasks where dense is (nearly) perfect every
 * loss is the method's, so this is the grid whose verdicts mean something on this model; VT adds a
 * multi-hop lookup (a chain of five assignments) to the two single lookups. 3 × 3 × 33 configurations;
 * about three thousand decode-heavy examples of a 5.8M-parameter model, minutes on one H100.
 */
export function organismPreset(modelsDir = 'models'): ExperimentSpecInput {
  return {
    name: 'organism',
    models: [join(modelsDir, 'organism')],
    backend: 'cuda',
    tasks: ['niah', 'vt', 'story_retrieval'],
    lengths: [4096, 8192, 16384],
    sparsities: [0.5, 0.8, 0.9, 0.95],
    // flexprefill_full (our query-aware extension) has no GPU implementation: docs/gpu-methods.md.
    methods: listMethods().filter((m) => m.id !== 'dense' && m.id !== 'flexprefill_full').map((m) => m.id),
    examples: 10,
    seed: 43,
    // The organism's NIAH reply (four worked answer lines) is ≈ 265 tokens; story retrieval's shorter.
    generation: { maxNewTokens: 400 },
    chunkSize: 4096,
  };
}

export const PRESETS = { quick: quickPreset, paper: paperPreset, organism: organismPreset } as const;
export type PresetName = keyof typeof PRESETS;

/** A preset name or a YAML/JSON experiment file, validated. */
export function loadExperiment(nameOrPath: string, modelsDir = 'models'): ExperimentSpec {
  if (nameOrPath in PRESETS) return parseExperimentSpec(PRESETS[nameOrPath as PresetName](modelsDir), `preset ${nameOrPath}`);
  if (!existsSync(nameOrPath)) throw new Error(`"${nameOrPath}" is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a file`);
  return loadExperimentSpec(nameOrPath);
}
