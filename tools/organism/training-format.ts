/**
 * What the model organism is trained to produce after a task prompt: a one-line explanation and the
 * gold answer in `<answer>` tags, in the format each task's scorer parses, then the end-of-turn token.
 * Shared by the tokenizer text sample, the training-data generator and the tests, so all three agree.
 */
import type { TaskExample } from '../../src/tasks/index.js';

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
}

export interface ReplyParts {
  head: string;
  answer: string;
  tail: string;
}

function answerText(example: Pick<TaskExample, 'task' | 'gold'>, style: ReplyStyle): string {
  if (example.task === 'vt' && style.vtVarPrefix) {
    const variables = (example.gold as { variables?: unknown }).variables;
    if (!Array.isArray(variables) || !variables.every((v) => typeof v === 'string')) throw new Error('task vt: gold has no "variables" list');
    return variables.map((v) => `VAR ${v}`).join(' ');
  }
  return goldAnswerText(example);
}

export function replyParts(example: Pick<TaskExample, 'task' | 'gold'>, style: ReplyStyle = {}): ReplyParts {
  if (!isTrainingTask(example.task)) {
    throw new Error(`task ${example.task} is not a training task (training tasks: ${TRAINING_TASKS.join(', ')}); QA data is for evaluation only`);
  }
  return { head: `<explanation>\n${EXPLANATIONS[example.task]}\n</explanation>\n<answer>\n`, answer: answerText(example, style), tail: '\n</answer>' };
}

/** The assistant reply the organism learns for `example` (without the end-of-turn token). */
export function targetText(example: Pick<TaskExample, 'task' | 'gold'>, style: ReplyStyle = {}): string {
  const { head, answer, tail } = replyParts(example, style);
  return head + answer + tail;
}
