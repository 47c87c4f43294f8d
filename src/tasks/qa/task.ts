/**
 * The three QA tasks (SQuAD open answers, QuALITY and TOEFL-QA multiple choice): the gold document
 * packed among other documents of the same data set up to the length.
 *
 * Task-level preparation (cached per tokenizer, data folder, seed and filter length): every distinct
 * context is measured once as "\n\nDocument XX:\n<text>" + 3 tokens; questions whose single-document
 * prompt exceeds questionFilterLength − 84 tokens (the original: 8192 − 20 safety − 64 template) are
 * dropped, so every length uses the same questions; the rest are shuffled with the task-level
 * generator. The pool is the distinct contexts that keep at least one question.
 */
import { buildPrompt } from '../prompt.js';
import { DoesNotFitError, TEMPLATE_RESERVE, exampleIndices, makeExample, resolveSeed } from '../length.js';
import { integersAtLeast, resolveParams } from '../params.js';
import { SeededRandom } from '../random.js';
import { TokenCounter, largestFitting } from '../token-counter.js';
import { pySplit } from '../python-text.js';
import type { TextTokenizer } from '../../engine/tokenizer.js';
import { defaultQaDir, loadQaDataset, type QaDatasetName } from './data.js';
import { extractQaAnswer, normalizeMcqAnswer, normalizeOpenAnswer, setF1 } from './score.js';
import type { GenerateOptions, ScoreResult, Task, TaskExample } from '../types.js';

export interface QaParams {
  /** The shortest length of the experiment; questions must fit it alone (default 8192, as the original). */
  questionFilterLength: number;
}

export interface QaGold {
  multipleChoice: boolean;
  /** SQuAD: all reference answers; multiple choice: [correct letters]. */
  answers: string[];
  question: string;
  /** 1-based number of the gold document in the prompt. */
  targetDocument: number;
}

/** Tokens the original keeps free besides the template when filtering questions. */
const FILTER_SAFETY = 20;
/** Tokens left free before the last document is cut to fit. */
const PACKING_SAFETY = 25;
/** The original's per-document label allowance. */
const LABEL_ALLOWANCE = 3;

const INTRO = 'Below are several documents. After reading them, answer a question about one particular document.';
const OPEN_FORMAT = 'Just the answer, as briefly as possible.';
const MCQ_FORMAT = "Only the letter(s) of the correct option(s), for example 'B' or 'AC'.";
const OPEN_BULLETS = [
  'Answer with a short phrase, not a full sentence.',
  'For a date, give the complete date only when the question asks for it.',
  "For a place, use its shortest unambiguous name (for example 'Paris', not 'the city of Paris').",
  'For a comparison, give only the option that meets the criterion.',
];
const MCQ_BULLETS = ["More than one option may be correct (for example, 'AC' is a valid answer)."];

function formatPrompt(context: string, question: string, multipleChoice: boolean, targetDocument: number): string {
  return buildPrompt({
    intro: INTRO,
    plural: false,
    question: `Question about document ${targetDocument}:\n${question}`,
    context,
    answerFormat: multipleChoice ? MCQ_FORMAT : OPEN_FORMAT,
    bullets: multipleChoice ? MCQ_BULLETS : OPEN_BULLETS,
  });
}

interface PreparedQuestion {
  context: string;
  question: string;
  answers: string[];
  /** Tokens of the question's single-document prompt (the packing starts from this). */
  singleDocumentTokens: number;
}

interface PreparedQa {
  multipleChoice: boolean;
  questions: PreparedQuestion[];
  pool: { text: string; tokens: number }[];
}

const prepared = new WeakMap<TextTokenizer, Map<string, PreparedQa>>();

function prepare(dataset: QaDatasetName, tokenizer: TextTokenizer, dataDir: string, seed: number, filterLength: number): PreparedQa {
  const key = `${dataset}\u0000${dataDir}\u0000${seed}\u0000${filterLength}`;
  let perTokenizer = prepared.get(tokenizer);
  if (!perTokenizer) prepared.set(tokenizer, (perTokenizer = new Map()));
  const hit = perTokenizer.get(key);
  if (hit) return hit;

  const data = loadQaDataset(dataset, dataDir);
  const counter = new TokenCounter(tokenizer);
  const documentTokens = data.contexts.map((c) => counter.countOnce(`\n\nDocument XX:\n${c}`) + LABEL_ALLOWANCE);
  const limit = filterLength - FILTER_SAFETY - TEMPLATE_RESERVE;
  // Sum of pieces (frame + question twice + labelled document); exact tokenisation only near the limit.
  const frame = counter.countOnce(formatPrompt('', '', data.multipleChoice, 2137));
  const questions: PreparedQuestion[] = [];
  const used = new Set<number>();
  for (const q of data.questions) {
    const context = data.contexts[q.contextIndex] as string;
    let tokens = frame + 2 * counter.count(q.question) + (documentTokens[q.contextIndex] as number) - LABEL_ALLOWANCE;
    if (Math.abs(tokens - limit) <= 64) {
      tokens = counter.countOnce(formatPrompt(`\n\nDocument XX:\n${context}`, q.question, data.multipleChoice, 2137));
    }
    if (tokens > limit) continue;
    questions.push({ context, question: q.question, answers: q.answers, singleDocumentTokens: tokens });
    used.add(q.contextIndex);
  }
  new SeededRandom(seed).shuffle(questions);
  const pool = data.contexts.map((text, i) => ({ text, tokens: documentTokens[i] as number })).filter((_, i) => used.has(i));
  const result = { multipleChoice: data.multipleChoice, questions, pool };
  perTokenizer.set(key, result);
  return result;
}

/** The longest whitespace-word prefix of `text` (words rejoined by single spaces) within `maxTokens`. */
function longestPrefix(counter: TokenCounter, text: string, maxTokens: number): string {
  const words = pySplit(text);
  const wordCost: number[] = [0];
  const estimate = (m: number): number => {
    for (let j = wordCost.length - 1; j < m; j++) wordCost.push((wordCost[j] as number) + counter.count(` ${words[j]}`));
    return wordCost[m] as number;
  };
  const exact = (m: number): number => counter.countOnce(words.slice(0, m).join(' '));
  const m = largestFitting({ lo: 0, hi: words.length, budget: maxTokens, estimate, exact });
  return words.slice(0, Math.max(0, m)).join(' ');
}

function makeQaTask(name: string, dataset: QaDatasetName, description: string, smallestLength: number): Task<QaParams, QaGold> {
  const task: Task<QaParams, QaGold> = {
    name,
    family: 'qa',
    metric: dataset === 'squad' ? 'f1' : 'accuracy',
    description,
    defaults: { questionFilterLength: 8192 },
    smallestLength,
    generate(options: GenerateOptions<QaParams>): TaskExample<QaGold>[] {
      const params = resolveParams(name, task.defaults, options.params, (p) => integersAtLeast(p, TEMPLATE_RESERVE + FILTER_SAFETY + 1, ['questionFilterLength']));
      const seed = resolveSeed(name, options.seed);
      const indices = exampleIndices(name, options);
      const data = prepare(dataset, options.tokenizer, options.dataDir ?? defaultQaDir(), seed, params.questionFilterLength);
      return indices.map((index) =>
        makeExample<QaGold>(name, { tokenizer: options.tokenizer, length: options.length, seed, index }, (ctx) => {
          const q = data.questions[index];
          if (!q) {
            throw new DoesNotFitError(
              `only ${data.questions.length} ${dataset} questions fit a single-document prompt of ${params.questionFilterLength} tokens; example ${index} does not exist`,
            );
          }
          const { rng, counter, rawBudget } = ctx;
          if (q.singleDocumentTokens > rawBudget) {
            throw new DoesNotFitError(
              `the question's own document needs ${q.singleDocumentTokens} raw tokens, above the budget of ${rawBudget} (set questionFilterLength to the experiment's shortest length)`,
            );
          }
          let current = q.singleDocumentTokens;
          const others = rng.shuffle(data.pool.filter((d) => d.text !== q.context));
          const selected: string[] = [];
          const leftover: { text: string; tokens: number }[] = [];
          for (const doc of others) {
            if (current + doc.tokens < rawBudget) {
              selected.push(doc.text);
              current += doc.tokens;
            } else leftover.push(doc);
          }
          let cut: string | null = null;
          const room = rawBudget - current - PACKING_SAFETY;
          if (room >= 0) {
            const first = leftover.find((d) => d.tokens > room);
            if (first) {
              const prefix = longestPrefix(counter, first.text, room);
              if (prefix !== '') {
                selected.push(prefix);
                cut = prefix;
              }
            }
          }
          const documents = rng.shuffle([...selected, q.context]);
          const targetDocument = documents.indexOf(q.context) + 1;
          const context = documents.map((d, i) => `Document ${i + 1}:\n${d}`).join('\n\n');
          return {
            prompt: formatPrompt(context, q.question, data.multipleChoice, targetDocument),
            gold: { multipleChoice: data.multipleChoice, answers: q.answers, question: q.question, targetDocument },
            goldTexts: q.answers,
            meta: { documents: documents.length, cutDocumentWords: cut === null ? 0 : pySplit(cut).length, poolSize: data.pool.length },
          };
        }, { topUp: true }),
      );
    },
    score(example: Pick<TaskExample<QaGold>, 'gold'>, output: string): ScoreResult {
      const answer = extractQaAnswer(output);
      if (example.gold.multipleChoice) {
        const predicted = normalizeMcqAnswer(answer);
        const gold = normalizeMcqAnswer(example.gold.answers[0] ?? '');
        return { score: predicted === gold ? 1 : 0, details: { predicted, gold } };
      }
      const predicted = normalizeOpenAnswer(answer);
      const f1s = example.gold.answers.map((g) => setF1(predicted, normalizeOpenAnswer(g)));
      if (f1s.length === 0) throw new Error(`${name}: example has no gold answers`);
      return { score: Math.max(...f1s), details: { predicted, f1PerGold: f1s } };
    },
  };
  return task;
}

export const squadTask = makeQaTask('qa_squad', 'squad', 'SQuAD: open answer about one of many packed Wikipedia paragraphs (F1 over token sets)', 1024);
// QuALITY's stories run to ~8K tokens: with the default question filter every kept question fits 8192.
export const qualityTask = makeQaTask('qa_quality', 'quality', 'QuALITY: multiple-choice question about one of the packed stories', 8192);
export const toeflTask = makeQaTask('qa_toefl', 'toeflqa', 'TOEFL-QA: multiple-choice question about one of the packed lecture transcripts', 1536);
