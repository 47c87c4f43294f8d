/**
 * Length control shared by every task. The original reserves 64 tokens for the chat template, fills
 * the raw prompt up to n − 64, and asserts: every gold answer ≤ 1024 tokens, raw prompt ≤ n − 64,
 * templated input ≤ n, templated input ≥ 0.9·n. We build the same way, check the same four bounds on
 * the real token counts, and where a piece-wise count overshot (tokens can merge across piece
 * boundaries), rebuild the same example (same seed) with the raw budget lowered by the overshoot.
 */
import type { TextTokenizer } from '../engine/tokenizer.js';
import { SeededRandom } from './random.js';
import { TokenCounter } from './token-counter.js';
import type { TaskExample } from './types.js';

export const TEMPLATE_RESERVE = 64;
export const MAX_GOLD_TOKENS = 1024;
export const MIN_FILL_FRACTION = 0.9;
export const DEFAULT_SEED = 43;
const REBUILD_ATTEMPTS = 4;

/** An example that cannot be generated within the bounds; the run can record it and go on. */
export class TaskExampleError extends Error {
  constructor(
    readonly task: string,
    readonly length: number,
    readonly seed: number,
    readonly index: number,
    readonly reason: string,
  ) {
    super(`task ${task}, length ${length}, seed ${seed}, example ${index}: ${reason}`);
    this.name = 'TaskExampleError';
  }
}

/** Thrown by a task's builder when its content cannot fit the raw budget it was given. */
export class DoesNotFitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DoesNotFitError';
  }
}

/** What a task's builder returns for one example. */
export interface BuiltPrompt<G> {
  prompt: string;
  gold: G;
  /** Every acceptable reference answer text (the first is the reference whose length is stored). */
  goldTexts: string[];
  meta: Record<string, unknown>;
}

export interface BuildContext {
  tokenizer: TextTokenizer;
  counter: TokenCounter;
  /** The example's own generator (seed + index), fresh for every build attempt. */
  rng: SeededRandom;
  /** Tokens the raw prompt may use (n − 64, lowered after an overshoot). */
  rawBudget: number;
  length: number;
  index: number;
}

export function validateLength(task: string, length: number): void {
  if (!Number.isInteger(length) || length <= TEMPLATE_RESERVE) {
    throw new Error(`task ${task}: length must be an integer above ${TEMPLATE_RESERVE} tokens, got ${length}`);
  }
}

export function makeExample<G>(
  task: string,
  args: { tokenizer: TextTokenizer; length: number; seed: number; index: number },
  build: (ctx: BuildContext) => BuiltPrompt<G>,
): TaskExample<G> {
  const { tokenizer, length, seed, index } = args;
  const fail = (reason: string): never => {
    throw new TaskExampleError(task, length, seed, index, reason);
  };
  const rawLimit = length - TEMPLATE_RESERVE;
  const counter = new TokenCounter(tokenizer);
  let rawBudget = rawLimit;
  let lastOvershoot = '';
  for (let attempt = 0; attempt < REBUILD_ATTEMPTS; attempt++) {
    let built: BuiltPrompt<G>;
    try {
      built = build({ tokenizer, counter, rng: new SeededRandom(seed + index), rawBudget, length, index });
    } catch (e) {
      if (e instanceof DoesNotFitError) return fail(e.message);
      throw e;
    }
    const rawLength = tokenizer.encode(built.prompt).length;
    const inputIds = tokenizer.encodeUserPrompt(built.prompt);
    const overshoot = Math.max(rawLength - rawLimit, inputIds.length - length);
    if (overshoot > 0) {
      lastOvershoot = `raw prompt ${rawLength} tokens (limit ${rawLimit}), templated input ${inputIds.length} (limit ${length})`;
      rawBudget -= overshoot + 4 * attempt;
      continue;
    }
    const minimum = Math.ceil(MIN_FILL_FRACTION * length);
    if (inputIds.length < minimum) {
      fail(`templated input is ${inputIds.length} tokens, below the required ${minimum} (0.9·n); the task cannot fill this length`);
    }
    const goldLengths = built.goldTexts.map((t) => tokenizer.encode(t).length);
    const longest = Math.max(0, ...goldLengths);
    if (longest > MAX_GOLD_TOKENS) fail(`gold answer is ${longest} tokens, above ${MAX_GOLD_TOKENS}`);
    return {
      id: `${task}/n${length}/s${seed}/${index}`,
      task,
      index,
      seed,
      length,
      prompt: built.prompt,
      inputIds,
      inputLength: inputIds.length,
      rawLength,
      gold: built.gold,
      goldLength: goldLengths[0] ?? 0,
      meta: built.meta,
    };
  }
  return fail(`still too long after ${REBUILD_ATTEMPTS} builds: ${lastOvershoot}`);
}

/** Shared option handling for `generate`: defaults, validation, the list of indices. */
export function exampleIndices(task: string, opts: { length: number; count: number; firstIndex?: number }): number[] {
  validateLength(task, opts.length);
  const first = opts.firstIndex ?? 0;
  if (!Number.isInteger(opts.count) || opts.count < 0) throw new Error(`task ${task}: count must be a non-negative integer, got ${opts.count}`);
  if (!Number.isInteger(first) || first < 0) throw new Error(`task ${task}: firstIndex must be a non-negative integer, got ${first}`);
  return Array.from({ length: opts.count }, (_, k) => first + k);
}

export function resolveSeed(task: string, seed: number | undefined): number {
  const s = seed ?? DEFAULT_SEED;
  if (!Number.isSafeInteger(s)) throw new Error(`task ${task}: seed must be a safe integer, got ${s}`);
  return s;
}
