/**
 * What the model organism is trained to produce after a task prompt: a one-line explanation and the
 * gold answer in `<answer>` tags, in the format each task's scorer parses, then the end-of-turn token.
 * Shared by the tokenizer text sample, the training-data generator and the tests, so all three agree.
 */
import type { TaskExample } from '../../src/tasks/index.js';
import { LOCATIONS } from '../../src/tasks/story/pools.js';

/** The six synthetic tasks the organism trains on. QA data is evaluation data: never trained on. */
export const TRAINING_TASKS = ['niah', 'vt', 'cwe', 'story_retrieval', 'story_multihop', 'story_filtering'] as const;
export type TrainingTask = (typeof TRAINING_TASKS)[number];

/** Smallest seed used for training text; evaluation uses 43 + i, so anything at or above this is disjoint. */
export const TRAINING_SEED_BASE = 1_000_000;

/** A short, fixed explanation per task: the scorers ignore it, so it only has to be cheap to learn. */
const EXPLANATIONS: Record<TrainingTask, string> = {
  niah: 'Each key appears in one sentence of the context, which gives its value.',
  vt: 'Following the assignments from the number gives these variables.',
  cwe: 'These words are repeated most often in the list.',
  story_retrieval: 'Each answer is stated in the chapter the question names.',
  story_multihop: 'The chapter just before the named purchase ends with this purchase.',
  story_filtering: 'These chapters have no purchase.',
};

export function isTrainingTask(name: string): name is TrainingTask {
  return (TRAINING_TASKS as readonly string[]).includes(name);
}

/** The gold answer text exactly as it goes between the answer tags (the reference the task stores). */
export function goldAnswerText(example: Pick<TaskExample, 'task' | 'gold'>): string {
  const gold = example.gold as { text?: unknown; answer?: unknown };
  if (typeof gold.text === 'string') return gold.text;
  if (typeof gold.answer === 'string') return gold.answer;
  throw new Error(`task ${example.task}: gold has neither a "text" nor an "answer" string`);
}

/**
 * The reply in three parts: the fixed frame before the answer (the same for every example of a task),
 * the gold answer, and the closing tag. Tokenised part by part, so the trainer knows which reply tokens
 * are the answer (the frame is learnt in a few hundred steps and then only dilutes the loss and the
 * per-task accuracy).
 */
/**
 * Optional changes to how answers are written (all off: the format runs 1–6 trained on).
 * vtVarPrefix: VT's answer as `VAR QNLKR VAR KNAEQ …` instead of `QNLKR KNAEQ …` (the scorer deletes
 * every "VAR "). Without it the first variable follows `<answer>\n` and is tokenised without its
 * leading space (`Q N L K R`), unlike in the prompt (`VAR ĠQ N L K R = …`), so copying it needs a
 * token mapping on exactly the lookup token; with it every answer variable is tokenised as in the prompt.
 */
export interface ReplyStyle {
  vtVarPrefix?: boolean;
  /**
   * Run 7: for VT and story retrieval, the explanation states the lookups one by one, each right after
   * the key it starts from, and the answer block then copies them (workedLookups, below). Off: the fixed
   * one-line explanation of runs 1–6.
   */
  workedLookups?: boolean;
  /**
   * Run 8: story multi-hop's explanation writes its hops out, each after its key:
   * `The lacquered oak buckle was bought in Chapter 12; in Chapter 11, just before it, Arion bought the
   * carved bone comb.` (the item copied from the question → the chapter of its purchase → the chapter
   * before → that chapter's purchase); the answer block stays the gold item. Off: the one-line
   * explanation of runs 1–7.
   */
  workedMultihop?: boolean;
}

export interface ReplyParts {
  head: string;
  answer: string;
  tail: string;
}

function vtVariables(example: Pick<TaskExample, 'gold'>): string[] {
  const variables = (example.gold as { variables?: unknown }).variables;
  if (!Array.isArray(variables) || !variables.every((v) => typeof v === 'string')) throw new Error('task vt: gold has no "variables" list');
  return variables;
}

function answerText(example: Pick<TaskExample, 'task' | 'gold'>, style: ReplyStyle): string {
  if (example.task === 'vt' && style.vtVarPrefix) return vtVariables(example).map((v) => `VAR ${v}`).join(' ');
  return goldAnswerText(example);
}

/** The text of chapter `chapter` of a story prompt (the line after its "Chapter k:" heading). */
export function chapterText(prompt: string, chapter: number): string {
  const start = new RegExp(`(?:^|\\n)Chapter ${chapter}:\\n([^\\n]*)`).exec(prompt);
  if (!start) throw new Error(`story prompt has no "Chapter ${chapter}:" heading`);
  return start[1] as string;
}

/**
 * The location of chapter `chapter` in a story prompt: the pool location named first in the chapter's
 * text (every scene sentence names it; no template names another place before it).
 */
export function chapterLocation(prompt: string, chapter: number): string {
  const text = chapterText(prompt, chapter);
  let best: { at: number; name: string } | null = null;
  for (const name of LOCATIONS) {
    const m = new RegExp(`(?<![\\w-])${name}(?![\\w-])`).exec(text);
    if (m && (best === null || m.index < best.at || (m.index === best.at && name.length > best.name.length))) best = { at: m.index, name };
  }
  if (best === null) throw new Error(`chapter ${chapter} names no location of the pool`);
  return best.name;
}

/**
 * Explanation and answer with the lookups written out (ReplyStyle.workedLookups), for the two tasks
 * whose lookup key is far from where the answer is written:
 * - VT: the explanation copies the asked value from the question, then names the chain from it,
 *   `The value 57762 is held by VAR QNLKR, VAR KNAEQ, …` — every variable right after the key it is
 *   found from (the value, then the previous variable), and written as in the prompt (`VAR` + space +
 *   name: the same tokens). The answer repeats the names, led by a space so the first name is tokenised
 *   as in the prompt and the explanation; the scorer splits on whitespace.
 * - Story retrieval: one explanation line per question, `1. Chapter 15, in Messana: Valen.`: the asked
 *   chapter copied from the question, then the chapter's location (found a few tokens after its
 *   heading), then the answer; the answer block lists the answers as the scorer reads them.
 * Multi-hop with ReplyStyle.workedMultihop: see workedMultihop. Returns null for the other tasks (their
 * replies stay as in runs 1–6) and for tasks whose style flag is off.
 */
function workedReply(example: Pick<TaskExample, 'task' | 'gold' | 'prompt'>, style: ReplyStyle): { explanation: string; answer: string } | null {
  if (example.task === 'story_multihop' && style.workedMultihop) return workedMultihop(example);
  if (!style.workedLookups) return null;
  if (example.task === 'vt') {
    const value = (example.gold as { value?: unknown }).value;
    if (typeof value !== 'number') throw new Error('task vt: gold has no numeric "value"');
    const variables = vtVariables(example);
    return { explanation: `The value ${value} is held by ${variables.map((v) => `VAR ${v}`).join(', ')}.`, answer: ` ${variables.join(' ')}` };
  }
  if (example.task === 'story_retrieval') {
    const questions = (example.gold as { questions?: { chapter: number; type: string; answer: string }[] }).questions;
    if (!Array.isArray(questions)) throw new Error('task story_retrieval: gold has no "questions" list');
    const lines = questions.map((q, k) => {
      const location = chapterLocation(example.prompt, q.chapter);
      if (q.type === 'location' && location !== q.answer) {
        throw new Error(`story_retrieval: chapter ${q.chapter}'s first location is ${location}, the gold says ${q.answer}`);
      }
      return `${k + 1}. Chapter ${q.chapter}, in ${location}: ${q.answer}.`;
    });
    return { explanation: lines.join('\n'), answer: goldAnswerText(example) };
  }
  return null;
}

/**
 * Multi-hop's hops written out (ReplyStyle.workedMultihop). The chapters come from the gold and are
 * checked against the prompt: the target chapter's text names the asked item and the chapter before
 * it names the answer, so the explanation never states a hop the context does not hold.
 */
function workedMultihop(example: Pick<TaskExample, 'task' | 'gold' | 'prompt'>): { explanation: string; answer: string } {
  const gold = example.gold as { answer?: unknown; targetItem?: unknown; targetChapter?: unknown };
  const { answer, targetItem, targetChapter } = gold;
  if (typeof answer !== 'string' || typeof targetItem !== 'string' || typeof targetChapter !== 'number' || !(targetChapter >= 2)) {
    throw new Error('task story_multihop: gold needs "answer", "targetItem" and a "targetChapter" ≥ 2');
  }
  const previous = targetChapter - 1;
  if (!chapterText(example.prompt, targetChapter).includes(targetItem)) throw new Error(`story_multihop: chapter ${targetChapter} does not name ${targetItem}`);
  if (!chapterText(example.prompt, previous).includes(answer)) throw new Error(`story_multihop: chapter ${previous} does not name ${answer}`);
  return {
    explanation: `The ${targetItem} was bought in Chapter ${targetChapter}; in Chapter ${previous}, just before it, Arion bought the ${answer}.`,
    answer: goldAnswerText(example),
  };
}

/**
 * With workedLookups the example-specific explanation belongs to the answer span (it holds the
 * lookups, so it is weighted as answer, not as the fixed frame); the head is then `<explanation>\n`.
 */
export function replyParts(example: Pick<TaskExample, 'task' | 'gold'> & { prompt?: string }, style: ReplyStyle = {}): ReplyParts {
  if (!isTrainingTask(example.task)) {
    throw new Error(`task ${example.task} is not a training task (training tasks: ${TRAINING_TASKS.join(', ')}); QA data is for evaluation only`);
  }
  if (style.workedLookups || style.workedMultihop) {
    if (typeof example.prompt !== 'string') throw new Error(`task ${example.task}: worked lookups need the example's prompt`);
    const worked = workedReply({ ...example, prompt: example.prompt }, style);
    if (worked) return { head: '<explanation>\n', answer: `${worked.explanation}\n</explanation>\n<answer>\n${worked.answer}`, tail: '\n</answer>' };
  }
  return { head: `<explanation>\n${EXPLANATIONS[example.task]}\n</explanation>\n<answer>\n`, answer: answerText(example, style), tail: '\n</answer>' };
}

/** The assistant reply the organism learns for `example` (without the end-of-turn token). */
export function targetText(example: Pick<TaskExample, 'task' | 'gold'> & { prompt?: string }, style: ReplyStyle = {}): string {
  const { head, answer, tail } = replyParts(example, style);
  return head + answer + tail;
}
