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

export interface MakeExampleOptions {
  /**
   * After a build within bounds, rebuild with the unused raw tokens (then half of them) added to the
   * budget and keep the rebuild if it is still within bounds and longer. For tasks whose piece costs over-estimate
   * (QA's per-document allowance), this lands closer to n at the price of one more build.
   */
  topUp?: boolean;
}

interface Measured<G> {
  built: BuiltPrompt<G>;
  rawLength: number;
  inputIds: number[];
  budget: number;
}

export function makeExample<G>(
  task: string,
  args: { tokenizer: TextTokenizer; length: number; seed: number; index: number },
  build: (ctx: BuildContext) => BuiltPrompt<G>,
  options: MakeExampleOptions = {},
): TaskExample<G> {
  const { tokenizer, length, seed, index } = args;
  const fail = (reason: string): never => {
    throw new TaskExampleError(task, length, seed, index, reason);
  };
  const rawLimit = length - TEMPLATE_RESERVE;
  const counter = new TokenCounter(tokenizer);
  const measure = (budget: number): Measured<G> => {
    const built = build({ tokenizer, counter, rng: new SeededRandom(seed + index), rawBudget: budget, length, index });
    return { built, rawLength: tokenizer.encode(built.prompt).length, inputIds: tokenizer.encodeUserPrompt(built.prompt), budget };
  };
  const overshootOf = (m: Measured<G>): number => Math.max(m.rawLength - rawLimit, m.inputIds.length - length);

  let result: Measured<G> | null = null;
  let rawBudget = rawLimit;
  let lastOvershoot = '';
  for (let attempt = 0; attempt < REBUILD_ATTEMPTS && result === null; attempt++) {
    let m: Measured<G>;
    try {
      m = measure(rawBudget);
    } catch (e) {
      if (e instanceof DoesNotFitError) return fail(e.message);
      throw e;
    }
    const overshoot = overshootOf(m);
    if (overshoot <= 0) result = m;
    else {
      lastOvershoot = `raw prompt ${m.rawLength} tokens (limit ${rawLimit}), templated input ${m.inputIds.length} (limit ${length})`;
      rawBudget -= overshoot + 4 * attempt;
    }
  }
  if (result === null) return fail(`still too long after ${REBUILD_ATTEMPTS} builds: ${lastOvershoot}`);

  if (options.topUp && result.rawLength < rawLimit) {
    // All of the unused tokens first; if that overshoots, half of them.
    const slack = rawLimit - result.rawLength;
    for (const extra of [slack, Math.floor(slack / 2)]) {
      if (extra <= 0) break;
      try {
        const more = measure(result.budget + extra);
        if (overshootOf(more) <= 0) {
          if (more.rawLength > result.rawLength) result = more;
          break;
        }
      } catch (e) {
        if (!(e instanceof DoesNotFitError)) throw e;
      }
    }
  }

  const { built, rawLength, inputIds } = result;
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
