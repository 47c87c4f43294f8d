/**
 * Training-only VT follow-up turns (run 11b). A VT context holds 8 chains, but its one question asks
 * for one of them, so a VT example carries one chain lookup per 2–8K tokens of context. Run 4 found
 * that NIAH's lookup formed once its lookups were dense enough (many queries per context), and that the
 * model had the capacity all along. Here the same context answers more chains: after the reply to the
 * task's own question, the conversation goes on with user turns that ask for other chains' values, each
 * answered in the same reply format. The first turn is exactly the evaluation's example (prompt and
 * reply), so nothing the scorer reads changes; evaluation never sees a follow-up.
 *
 * The chains are read back from the prompt's statements (vt-confusable.ts's contextStatements), so a
 * renamed (confusable) example gets follow-ups in its new names; a follow-up asks the task's own question
 * (vt.ts's vtQuestion).
 */
import { SeededRandom, type TaskExample } from '../../src/tasks/index.js';
import { contextStatements } from './vt-confusable.js';

/** Follow-up seeds sit apart from the task, chunk and renaming seeds. */
const FOLLOW_UP_SEED_OFFSET = -(2 ** 41);

export interface VtChain {
  value: number;
  /** The chain's variables in assignment order (the value's variable first). */
  variables: string[];
}

/** Every chain of a VT prompt's context, in the order their values are first assigned. */
export function vtChains(prompt: string): VtChain[] {
  const starts: { name: string; value: number }[] = [];
  const next = new Map<string, string>(); // variable -> the variable assigned from it
  for (const { target, value, source } of contextStatements(prompt)) {
    if (value !== undefined) starts.push({ name: target, value });
    else {
      const from = source as string;
      if (next.has(from)) throw new Error(`vt prompt: ${from} is copied into two variables; chains must not branch`);
      next.set(from, target);
    }
  }
  return starts.map(({ name, value }) => {
    const variables = [name];
    for (let v = next.get(name); v !== undefined; v = next.get(v)) {
      if (variables.includes(v)) throw new Error(`vt prompt: the chain from ${value} loops at ${v}`);
      variables.push(v);
    }
    return { value, variables };
  });
}

/**
 * Up to `count` chains other than the asked one, in a seeded random order (a pure function of the
 * example's seed and index), each as a VT example gold for the reply builder.
 */
export function followUpChains(example: Pick<TaskExample, 'prompt' | 'gold' | 'seed' | 'index'>, count: number): VtChain[] {
  if (!Number.isInteger(count) || count < 0) throw new Error(`follow-up count must be a whole number ≥ 0, got ${count}`);
  const asked = (example.gold as { value?: unknown }).value;
  if (typeof asked !== 'number') throw new Error('task vt: gold has no numeric "value"');
  const chains = vtChains(example.prompt);
  if (!chains.some((c) => c.value === asked)) throw new Error(`vt prompt: no chain starts from the asked value ${asked}`);
  const others = chains.filter((c) => c.value !== asked);
  const rng = new SeededRandom(FOLLOW_UP_SEED_OFFSET - example.seed * 4096 - example.index);
  return rng.shuffle(others).slice(0, count);
}

/**
 * The text between the end-of-turn token that closes a reply and the next reply, in the chat template
 * the organism's tokenizer uses (`<|role|>\n` + content + `<|end|>\n` per message): the newline after
 * the previous `<|end|>`, the user turn, and the assistant header.
 */
export function followUpTurnText(question: string, endToken: string): string {
  return `\n<|user|>\n${question}${endToken}\n<|assistant|>\n`;
}
