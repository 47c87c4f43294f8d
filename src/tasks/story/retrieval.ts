/**
 * Story retrieval (the original's `story_retrieval`, 16 questions): for 16 distinct chapters, ask
 * which location was visited, which character was met, or which item was bought there.
 */
import { buildPrompt } from '../prompt.js';
import { DoesNotFitError, exampleIndices, makeExample, resolveSeed } from '../length.js';
import { integersAtLeast, resolveParams } from '../params.js';
import { firstAnswerTag } from '../answer-tags.js';
import { D, DOT, S, pyIntKey, pyStrip } from '../python-text.js';
import { STORY_INTRO, buildStoryExample, normalizeStoryAnswer } from './common.js';
import { narrativeText, type Chapter } from './narrative.js';
import type { SeededRandom } from '../random.js';
import type { GenerateOptions, ScoreResult, Task, TaskExample } from '../types.js';

export interface RetrievalParams {
  numQueries: number;
}

type QueryType = 'location' | 'character' | 'item';

export interface RetrievalGold {
  /** Per question, in question order: chapter, what was asked, the answer. */
  questions: { chapter: number; type: QueryType; answer: string }[];
  /** "1. answer" lines; the scorer parses the gold from this text, as the original does. */
  text: string;
}

const NAME = 'story_retrieval';
const ANSWER_FORMAT = `1. FIRST_ANSWER
2. SECOND_ANSWER
etc.`;
const BULLETS = [
  'Write one answer per line, each starting with its question number.',
  "Leave out articles such as 'the' or 'a'.",
  'Each answer is a specific name, item or place mentioned in the story.',
];
/** The original's per-question overhead estimate: a generic question line, counted twice, plus 10. */
const QUESTION_ESTIMATE = 'XXX. In Chapter XXX, which specific location/character/item did the protagonist visit/meet/acquire?\n';
const SAFETY_TOKENS = 10;

function questionText(i: number, ch: Chapter, type: QueryType): string {
  if (type === 'location') return `${i}. In Chapter ${ch.id}, which place did the protagonist visit?`;
  if (type === 'character') return `${i}. In Chapter ${ch.id}, which character did the protagonist meet?`;
  return `${i}. In Chapter ${ch.id}, which item did the protagonist buy?`;
}

function answerOf(ch: Chapter, type: QueryType): string {
  return type === 'location' ? ch.location : type === 'character' ? ch.character : ch.item;
}

function promptFor(context: string, questions: string): string {
  return buildPrompt({ intro: STORY_INTRO, plural: true, question: questions, context, answerFormat: ANSWER_FORMAT, bullets: BULLETS });
}

function generate(options: GenerateOptions<RetrievalParams>): TaskExample<RetrievalGold>[] {
  const params = resolveParams(NAME, retrievalTask.defaults, options.params, (p) => integersAtLeast(p, 1, ['numQueries']));
  const seed = resolveSeed(NAME, options.seed);
  return exampleIndices(NAME, options).map((index) =>
    makeExample<RetrievalGold>(NAME, { tokenizer: options.tokenizer, length: options.length, seed, index }, (ctx) => {
      const overhead =
        ctx.counter.count(promptFor('', '')) + ctx.counter.count(QUESTION_ESTIMATE) * params.numQueries * 2 + SAFETY_TOKENS;
      return buildStoryExample(ctx, seed, overhead, (chapters: Chapter[], rng: SeededRandom) => {
        if (chapters.length < params.numQueries) {
          throw new DoesNotFitError(`only ${chapters.length} chapters fit, ${params.numQueries} are needed (one per question)`);
        }
        const picked = rng.sample(chapters, params.numQueries);
        // The original fixes one question of each type when there are exactly 3; otherwise each
        // question's type is drawn independently.
        const fixedTypes: QueryType[] | null = params.numQueries === 3 ? rng.shuffle<QueryType>(['location', 'character', 'item']) : null;
        const questions = picked.map((ch, k) => {
          const type = fixedTypes ? (fixedTypes[k] as QueryType) : rng.choice<QueryType>(['location', 'character', 'item']);
          return { chapter: ch.id, type, answer: answerOf(ch, type), line: questionText(k + 1, ch, type) };
        });
        const text = questions.map((q, k) => `${k + 1}. ${q.answer}`).join('\n');
        return {
          prompt: promptFor(narrativeText(chapters), questions.map((q) => q.line).join('\n')),
          gold: { questions: questions.map(({ chapter, type, answer }) => ({ chapter, type, answer })), text },
          goldTexts: [text],
          meta: { chapters: chapters.length },
        };
      });
    }),
  );
}

// `^(\d+)[\.:\)]\s*(.+?)\s*$` on each stripped line.
const ANSWER_LINE = new RegExp(`^(${D}+)[.:)]${S}*(${DOT}+?)${S}*$`, 'u');

/** Numbered answers (normalised) by canonical number; the first occurrence of a number wins. */
export function extractNumberedAnswers(output: string): Map<string, string> {
  const text = firstAnswerTag(output) ?? output;
  const answers = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = ANSWER_LINE.exec(pyStrip(line));
    if (!m) continue;
    const idx = pyIntKey(m[1] as string);
    if (!answers.has(idx)) answers.set(idx, normalizeStoryAnswer(m[2] as string));
  }
  return answers;
}

function score(example: Pick<TaskExample<RetrievalGold>, 'gold'>, output: string): ScoreResult {
  const gold = extractNumberedAnswers(example.gold.text);
  if (gold.size === 0) return { score: null, details: { reason: 'gold has no numbered answers' } };
  const predicted = extractNumberedAnswers(output);
  let correct = 0;
  for (const [idx, answer] of gold) if (predicted.get(idx) === answer) correct++;
  return { score: correct / gold.size, details: { correct, total: gold.size, predicted: Object.fromEntries(predicted) } };
}

export const retrievalTask: Task<RetrievalParams, RetrievalGold> = {
  name: NAME,
  family: 'story',
  metric: 'accuracy',
  description: 'Story retrieval: 16 questions, each about the place, character or item of one chapter',
  defaults: { numQueries: 16 },
  smallestLength: 4096,
  generate,
  score,
};
