/**
 * RULER needle-in-a-haystack with several queried keys (the original's `ruler_niah`, num_queries 4).
 * Needles read "The value for key K is: V." with K and V made of 4 groups of 8 random lowercase
 * letters/digits. The haystack is more needles of the same form (distractors, no prose), added one
 * by one while they fit, shuffled together with the queried ones into one paragraph.
 * numQueries 1 gives the single-needle variant; the distractor keys make every variant "multi-key".
 */
import { buildPrompt } from '../prompt.js';
import { DoesNotFitError, exampleIndices, makeExample, resolveSeed } from '../length.js';
import { integersAtLeast, resolveParams } from '../params.js';
import { firstAnswerTag } from '../answer-tags.js';
import { D, DOT, LINE_END, PY_WORD, S, pyCollapseSpaces, pyIntKey, pyStrip } from '../python-text.js';
import type { SeededRandom } from '../random.js';
import type { GenerateOptions, ScoreResult, Task, TaskExample } from '../types.js';

export interface NiahParams {
  numQueries: number;
  /** Groups per key/value and characters per group (4 × 8 in the original). */
  groups: number;
  groupLength: number;
}

export interface NiahGold {
  /** [key, value] in question order. */
  answers: [string, string][];
  text: string;
}

const NAME = 'niah';
const ALPHABET = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
const LATE_TRIES = 32;

const INTRO =
  'The document below is a long list of key-value pairs. Your job is to look up the values that belong to the keys I name.';
const ANSWER_FORMAT = `1. The answer for <key1> is <value1>.
2. The answer for <key2> is <value2>.
etc.`;
const BULLETS = [
  'Answer the keys in the same order as they are asked.',
  'Write every line as "<number>. The answer for <key> is <value>."',
  'Copy each key exactly as given; never change or reword it.',
  'Copy each value exactly as it is written in the document.',
];

function randomCode(rng: SeededRandom, p: NiahParams): string {
  const groups: string[] = [];
  for (let g = 0; g < p.groups; g++) groups.push(rng.choices(ALPHABET, p.groupLength).join(''));
  return groups.join('-');
}

function uniqueCode(rng: SeededRandom, p: NiahParams, used: Set<string>): string {
  for (;;) {
    const code = randomCode(rng, p);
    if (!used.has(code)) {
      used.add(code);
      return code;
    }
  }
}

function needleSentence(key: string, value: string): string {
  return `The value for key ${key} is: ${value}.`;
}

function questionLine(keys: string[]): string {
  return `Give the values for these keys: ${keys.join(', ')}`;
}

function promptFor(sentences: string[], keys: string[]): string {
  return buildPrompt({
    intro: INTRO,
    plural: true,
    question: questionLine(keys),
    context: sentences.join(' '),
    answerFormat: ANSWER_FORMAT,
    bullets: BULLETS,
  });
}

function generate(options: GenerateOptions<NiahParams>): TaskExample<NiahGold>[] {
  const params = resolveParams(NAME, niahTask.defaults, options.params, (p) => integersAtLeast(p, 1, ['numQueries', 'groups', 'groupLength']));
  const seed = resolveSeed(NAME, options.seed);
  return exampleIndices(NAME, options).map((index) =>
    makeExample<NiahGold>(NAME, { tokenizer: options.tokenizer, length: options.length, seed, index }, (ctx) => {
      const { rng, counter } = ctx;
      const usedKeys = new Set<string>();
      const usedValues = new Set<string>();
      const needles: [string, string][] = [];
      for (let q = 0; q < params.numQueries; q++) needles.push([uniqueCode(rng, params, usedKeys), uniqueCode(rng, params, usedValues)]);
      const queried = needles.map(([k, v]) => needleSentence(k, v));
      rng.shuffle(queried);
      const keys = needles.map(([k]) => k);
      let used = counter.countOnce(promptFor(queried, keys));
      if (used > ctx.rawBudget) {
        throw new DoesNotFitError(`the ${params.numQueries} queried needles alone need ${used} raw tokens, above the budget of ${ctx.rawBudget}`);
      }
      const distractors: string[] = [];
      // The original stops at the first distractor that does not fit. Random codes vary in token
      // count, so we then draw up to LATE_TRIES more and keep those that still fit: this closes most
      // of the gap to the budget (one distractor is 30–60 tokens), which matters at short n.
      let misses = 0;
      while (misses <= LATE_TRIES) {
        const sentence = needleSentence(uniqueCode(rng, params, usedKeys), uniqueCode(rng, params, usedValues));
        // Each sentence joins the paragraph after a space, so count it with that space.
        const cost = counter.countOnce(` ${sentence}`);
        if (used + cost > ctx.rawBudget) {
          misses++;
          continue;
        }
        if (misses > 0) misses++; // past the first misfit every draw counts as a try
        distractors.push(sentence);
        used += cost;
      }
      const sentences = rng.shuffle([...queried, ...distractors]);
      const text = needles.map(([k, v], i) => `${i + 1}. The answer for ${k} is ${v}.`).join('\n');
      return {
        prompt: promptFor(sentences, keys),
        gold: { answers: needles, text },
        goldTexts: [text],
        meta: { distractors: distractors.length, needles: sentences.length },
      };
    }),
  );
}

// `(\d+)\.\s*The answer for\s+([\w-]+)\s+is:?\s+(.+?)(?:\.|$)` with IGNORECASE | MULTILINE.
const ANSWER_LINE = new RegExp(`(${D}+)\\.${S}*The answer for${S}+([${PY_WORD}-]+)${S}+is:?${S}+(${DOT}+?)(?:\\.|${LINE_END})`, 'giu');
const IS_COLON = new RegExp(`(?<![${PY_WORD}])is:${S}+`, 'gu');

/** Lowercase, collapse whitespace, and turn "is:" into "is" (the original's value normalisation). */
function normalizeValue(text: string): string {
  return pyCollapseSpaces(pyStrip(text.toLowerCase())).replace(IS_COLON, 'is ');
}

/** Numbered answers by canonical number; the first occurrence of a number wins. */
export function extractNiahAnswers(output: string): Map<string, [string, string]> {
  const text = firstAnswerTag(output) ?? output;
  const answers = new Map<string, [string, string]>();
  for (const m of text.matchAll(ANSWER_LINE)) {
    const idx = pyIntKey(m[1] as string);
    if (!answers.has(idx)) answers.set(idx, [pyStrip(m[2] as string), normalizeValue(pyStrip(m[3] as string))]);
  }
  return answers;
}

function score(example: Pick<TaskExample<NiahGold>, 'gold'>, output: string): ScoreResult {
  const predicted = extractNiahAnswers(output);
  const perKey = example.gold.answers.map(([key, value], i) => {
    const got = predicted.get(String(i + 1));
    return got !== undefined && got[0] === key && got[1] === normalizeValue(value);
  });
  const total = perKey.length;
  const correct = perKey.filter(Boolean).length;
  return { score: total > 0 ? correct / total : 0, details: { correct, total, perKey } };
}

export const niahTask: Task<NiahParams, NiahGold> = {
  name: NAME,
  family: 'ruler',
  metric: 'accuracy',
  description: 'RULER needle in a haystack: find the values of 4 keys among distractor key-value sentences',
  defaults: { numQueries: 4, groups: 4, groupLength: 8 },
  smallestLength: 1280,
  generate,
  score,
};
