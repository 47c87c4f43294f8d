/**
 * RULER common words extraction (the original's `ruler_cwe`): a numbered list in which 10 words appear
 * 30 times each and as many other words as fit appear 3 times each; name the 10 frequent ones.
 */
import { buildPrompt } from '../prompt.js';
import { DoesNotFitError, exampleIndices, makeExample, resolveSeed } from '../length.js';
import { integersAtLeast, resolveParams } from '../params.js';
import { firstAnswerTag } from '../answer-tags.js';
import { D, DOT, S, pyStrip } from '../python-text.js';
import { largestFitting } from '../token-counter.js';
import { cweWordList } from './cwe-words.js';
import type { GenerateOptions, ScoreResult, Task, TaskExample } from '../types.js';

export interface CweParams {
  numCommonWords: number;
  commonFrequency: number;
  rareFrequency: number;
}

export interface CweGold {
  /** The frequent words, lowercased. */
  commonWords: string[];
  text: string;
}

const NAME = 'cwe';

const INTRO =
  'Below is a numbered list of words. Find the words that occur most often in it. Work it out by reading the list yourself: do not write code or use any tool to count, since this tests whether you can keep track of how often words occur.';

function question(p: CweParams): string {
  return `Exactly ${p.numCommonWords} words in the list occur ${p.commonFrequency} times each; every other word occurs ${p.rareFrequency} times. The list is in random order.
Name the ${p.numCommonWords} words that occur ${p.commonFrequency} times each.`;
}

function answerFormat(p: CweParams): string {
  return `1. first_word
2. second_word
...
${p.numCommonWords}. word_${p.numCommonWords}

Give exactly ${p.numCommonWords} words, one per line, numbered 1 to ${p.numCommonWords}.`;
}

function numbered(words: readonly string[]): string {
  return words.map((w, i) => `${i + 1}. ${w}`).join('\n');
}

function generate(options: GenerateOptions<CweParams>): TaskExample<CweGold>[] {
  const params = resolveParams(NAME, cweTask.defaults, options.params, (p) => {
    const problems = integersAtLeast(p, 1, ['numCommonWords', 'commonFrequency', 'rareFrequency']);
    if (problems.length === 0 && p.commonFrequency <= p.rareFrequency) problems.push('commonFrequency must exceed rareFrequency');
    return problems;
  });
  const seed = resolveSeed(NAME, options.seed);
  const wordList = cweWordList(seed);
  if (wordList.length <= params.numCommonWords) throw new Error(`task ${NAME}: the word list has only ${wordList.length} words`);
  const promptFor = (list: string): string =>
    buildPrompt({ intro: INTRO, plural: false, question: question(params), context: list, answerFormat: answerFormat(params), bullets: [] });

  return exampleIndices(NAME, options).map((index) =>
    makeExample<CweGold>(NAME, { tokenizer: options.tokenizer, length: options.length, seed, index }, (ctx) => {
      const { rng, counter } = ctx;
      const words = rng.shuffle(wordList.slice());
      const common = words.slice(0, params.numCommonWords);
      const rare = words.slice(params.numCommonWords);
      const commonEntries: string[] = [];
      for (let r = 0; r < params.commonFrequency; r++) commonEntries.push(...common);
      const entriesFor = (m: number): string[] => {
        const out = commonEntries.slice();
        const rarePart = rare.slice(0, m);
        for (let r = 0; r < params.rareFrequency; r++) out.push(...rarePart);
        return out;
      };

      // Piece-wise estimate: a line costs its "\n<number>." plus its " <word>"; prefix sums make any
      // count m a constant-time lookup. Each entry is at least 2 tokens, which bounds the search.
      const base = counter.countOnce(promptFor(''));
      const lineNumberCost = (i: number): number => counter.count(`\n${i}.`);
      const wordCost = (w: string): number => counter.count(` ${w}`);
      let commonCost = 0;
      commonEntries.forEach((w, i) => (commonCost += lineNumberCost(i + 1) + wordCost(w)));
      const hi = Math.min(rare.length, Math.floor(ctx.rawBudget / (2 * params.rareFrequency)));
      const rareWordPrefix = [0];
      const numberPrefix = [0];
      const extendTo = (m: number): void => {
        for (let j = rareWordPrefix.length - 1; j < m; j++) rareWordPrefix.push((rareWordPrefix[j] as number) + wordCost(rare[j] as string));
        const lines = m * params.rareFrequency;
        for (let k = numberPrefix.length - 1; k < lines; k++) {
          numberPrefix.push((numberPrefix[k] as number) + lineNumberCost(commonEntries.length + k + 1));
        }
      };
      const estimate = (m: number): number => {
        extendTo(m);
        return base + commonCost + params.rareFrequency * (rareWordPrefix[m] as number) + (numberPrefix[m * params.rareFrequency] as number);
      };
      // Measured on the unshuffled list, as the original does.
      const exact = (m: number): number => counter.countOnce(promptFor(numbered(entriesFor(m))));
      const rareCount = hi < 1 ? 0 : largestFitting({ lo: 1, hi, budget: ctx.rawBudget, estimate, exact });
      if (rareCount < 1) {
        throw new DoesNotFitError(
          `not even one rare word fits: the ${commonEntries.length} common entries and the prompt need ${exact(0)} raw tokens, the budget is ${ctx.rawBudget}`,
        );
      }
      const entries = rng.shuffle(entriesFor(rareCount));
      const commonWords = common.map((w) => w.toLowerCase());
      const text = numbered(commonWords);
      return {
        prompt: promptFor(numbered(entries)),
        gold: { commonWords, text },
        goldTexts: [text],
        meta: { entries: entries.length, rareWords: rareCount },
      };
    }),
  );
}

// `^\d+[.)\-]?\s*(.+)$` on each stripped line.
const NUMBERED_LINE = new RegExp(`^${D}+[.)\\-]?${S}*(${DOT}+)$`, 'u');

function score(example: Pick<TaskExample<CweGold>, 'gold'>, output: string): ScoreResult {
  const tagged = firstAnswerTag(output);
  if (tagged === null) return { score: 0, details: { reason: 'no <answer> tags' } };
  const predicted = new Set<string>();
  for (const raw of pyStrip(tagged).split('\n')) {
    const line = pyStrip(raw);
    if (line === '') continue;
    const m = NUMBERED_LINE.exec(line);
    if (m) {
      const word = pyStrip(m[1] as string).toLowerCase();
      if (word !== '') predicted.add(word);
    }
  }
  const gold = new Set(example.gold.commonWords);
  const intersection = [...predicted].filter((w) => gold.has(w)).length;
  const union = new Set([...predicted, ...gold]).size;
  return { score: union > 0 ? intersection / union : 0, details: { predicted: [...predicted], intersection, union } };
}

export const cweTask: Task<CweParams, CweGold> = {
  name: NAME,
  family: 'ruler',
  metric: 'iou',
  description: 'RULER common words: name the 10 words listed 30 times among words listed 3 times',
  defaults: { numCommonWords: 10, commonFrequency: 30, rareFrequency: 3 },
  smallestLength: 2304,
  generate,
  score,
};
