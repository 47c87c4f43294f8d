/**
 * Story filtering (the original's `story_filtering`, 3 chapters): the purchase sentence of 3 random
 * chapters is deleted; name the chapters in which nothing was bought. Items "bought" in those
 * chapters keep their later history (they may still be sold later), as in the original.
 */
import { buildPrompt } from '../prompt.js';
import { DoesNotFitError, exampleIndices, makeExample, resolveSeed } from '../length.js';
import { integersAtLeast, resolveParams } from '../params.js';
import { firstAnswerTag } from '../answer-tags.js';
import { D, PY_SPACE, S, pyIntKey, pyStrip } from '../python-text.js';
import { STORY_INTRO, buildStoryExample } from './common.js';
import { narrativeText, type Chapter } from './narrative.js';
import type { SeededRandom } from '../random.js';
import type { GenerateOptions, ScoreResult, Task, TaskExample } from '../types.js';

export interface FilteringParams {
  chaptersInQuestion: number;
}

export interface FilteringGold {
  /** Chapters without a purchase, ascending. */
  chapters: number[];
  /** "a, b, c" */
  text: string;
}

const NAME = 'story_filtering';
const ANSWER_FORMAT = 'chapter_number_1, chapter_number_2, ...';
const BULLETS = ['In the answer section, give only the chapter numbers, separated by commas.'];

function question(count: number): string {
  return `List every chapter in which the protagonist did not buy anything.
Note: exactly ${count} chapters have no purchase.`;
}

function promptFor(context: string, count: number): string {
  return buildPrompt({ intro: STORY_INTRO, plural: false, question: question(count), context, answerFormat: ANSWER_FORMAT, bullets: BULLETS });
}

function generate(options: GenerateOptions<FilteringParams>): TaskExample<FilteringGold>[] {
  const params = resolveParams(NAME, filteringTask.defaults, options.params, (p) => integersAtLeast(p, 1, ['chaptersInQuestion']));
  const seed = resolveSeed(NAME, options.seed);
  return exampleIndices(NAME, options).map((index) =>
    makeExample<FilteringGold>(NAME, { tokenizer: options.tokenizer, length: options.length, seed, index }, (ctx) =>
      // The original sizes the question with a count of 1.
      buildStoryExample(ctx, seed, ctx.counter.count(promptFor('', 1)), (chapters: Chapter[], rng: SeededRandom) => {
        const k = params.chaptersInQuestion;
        if (chapters.length < k) throw new DoesNotFitError(`only ${chapters.length} chapters fit, ${k} are needed`);
        const numbers = chapters.map((ch) => ch.id);
        const removed = rng.sample(numbers, k).sort((a, b) => a - b);
        const text = removed.join(', ');
        return {
          prompt: promptFor(narrativeText(chapters, new Set(removed)), k),
          gold: { chapters: removed, text },
          goldTexts: [text],
          meta: { chapters: chapters.length },
        };
      }),
    ),
  );
}

const NOT_DIGIT_COMMA_SPACE = new RegExp(`[^0-9,${PY_SPACE}]`, 'gu');
const SEPARATORS = new RegExp(`[,${PY_SPACE}]+`, 'u');
const CHAPTER_N = new RegExp(`Chapter${S}+(${D}+)`, 'giu');

/** Keep digits, commas and whitespace; split on runs of them; each piece is a number. */
function numberSet(text: string): Set<string> {
  const kept = pyStrip(text).replace(NOT_DIGIT_COMMA_SPACE, '');
  return new Set(kept.split(SEPARATORS).filter((p) => pyStrip(p) !== '').map(pyIntKey));
}

function score(example: Pick<TaskExample<FilteringGold>, 'gold'>, output: string): ScoreResult {
  const out = pyStrip(output);
  const goldText = pyStrip(example.gold.text);
  if (out === '' || goldText === '') return { score: null, details: { reason: 'empty output' } };
  const gold = numberSet(goldText);
  const tagged = firstAnswerTag(out);
  let predicted = new Set<string>();
  if (tagged !== null) {
    // "Chapter N" mentions win; otherwise every number in the answer counts.
    const mentioned = [...tagged.matchAll(CHAPTER_N)].map((m) => pyIntKey(m[1] as string));
    predicted = mentioned.length > 0 ? new Set(mentioned) : numberSet(tagged);
  }
  if (gold.size === 0 && predicted.size === 0) return { score: 1, details: { predicted: [] } };
  const intersection = [...predicted].filter((c) => gold.has(c)).length;
  const union = new Set([...predicted, ...gold]).size;
  return { score: union > 0 ? intersection / union : 0, details: { predicted: [...predicted], intersection, union } };
}

export const filteringTask: Task<FilteringParams, FilteringGold> = {
  name: NAME,
  family: 'story',
  metric: 'iou',
  description: 'Story filtering: name the 3 chapters whose purchase was removed (empty outputs are dropped)',
  defaults: { chaptersInQuestion: 3 },
  smallestLength: 2304,
  generate,
  score,
};
