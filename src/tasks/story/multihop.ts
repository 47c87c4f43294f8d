/**
 * Story multi-hop (the original's `story_multihop`): name the item bought in the chapter just
 * before the chapter where a given item was bought.
 */
import { buildPrompt } from '../prompt.js';
import { DoesNotFitError, exampleIndices, makeExample, resolveSeed } from '../length.js';
import { resolveParams } from '../params.js';
import { firstAnswerTag } from '../answer-tags.js';
import { STORY_INTRO, buildStoryExample, normalizeStoryAnswer } from './common.js';
import { narrativeText, type Chapter } from './narrative.js';
import type { SeededRandom } from '../random.js';
import type { GenerateOptions, ScoreResult, Task, TaskExample } from '../types.js';

export type MultihopParams = Record<string, never>;

export interface MultihopGold {
  answer: string;
  targetItem: string;
  targetChapter: number;
}

const NAME = 'story_multihop';
const ANSWER_FORMAT = 'ITEM_NAME';
const BULLETS = [
  'Put only the name of the item in the answer section.',
  "Leave out articles such as 'the' or 'a'.",
  'Write the item name exactly as the story does.',
];
/** The original sizes the question with a three-word placeholder item. */
const PLACEHOLDER_ITEM = 'item_component_1 item_component_2 item_component_3';

function question(targetItem: string): string {
  return `Which item did the protagonist buy most recently before buying the ${targetItem}?`;
}

function promptFor(context: string, targetItem: string): string {
  return buildPrompt({ intro: STORY_INTRO, plural: false, question: question(targetItem), context, answerFormat: ANSWER_FORMAT, bullets: BULLETS });
}

function generate(options: GenerateOptions<MultihopParams>): TaskExample<MultihopGold>[] {
  resolveParams(NAME, multihopTask.defaults, options.params, () => []);
  const seed = resolveSeed(NAME, options.seed);
  return exampleIndices(NAME, options).map((index) =>
    makeExample<MultihopGold>(NAME, { tokenizer: options.tokenizer, length: options.length, seed, index }, (ctx) =>
      buildStoryExample(ctx, seed, ctx.counter.count(promptFor('', PLACEHOLDER_ITEM)), (chapters: Chapter[], rng: SeededRandom) => {
        if (chapters.length < 2) throw new DoesNotFitError(`only ${chapters.length} chapter fits, 2 are needed`);
        const target = rng.choice(chapters.slice(1));
        const previous = chapters[target.id - 2] as Chapter;
        return {
          prompt: promptFor(narrativeText(chapters), target.item),
          gold: { answer: previous.item, targetItem: target.item, targetChapter: target.id },
          goldTexts: [previous.item],
          meta: { chapters: chapters.length },
        };
      }),
    ),
  );
}

function score(example: Pick<TaskExample<MultihopGold>, 'gold'>, output: string): ScoreResult {
  const tagged = firstAnswerTag(output);
  const predicted = tagged === null ? '' : normalizeStoryAnswer(tagged);
  const gold = normalizeStoryAnswer(example.gold.answer);
  // The original leaves out of the mean every example whose answer is missing or empty.
  if (gold === '' || predicted === '') {
    return { score: null, details: { reason: tagged === null ? 'no <answer> tags' : 'empty answer', predicted } };
  }
  return { score: predicted === gold ? 1 : 0, details: { predicted } };
}

export const multihopTask: Task<MultihopParams, MultihopGold> = {
  name: NAME,
  family: 'story',
  metric: 'accuracy',
  description: 'Story multi-hop: which item was bought last before a given item (untagged answers are dropped)',
  defaults: {},
  smallestLength: 2560,
  generate,
  score,
};
