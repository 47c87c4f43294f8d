/**
 * RULER variable tracking (the original's `ruler_vt`, 8 chains of 4 hops). Each chain assigns a
 * number to a first variable and copies it along hops + 1 = 5 variables ("VAR B = VAR A"); the
 * question asks for every variable that ends up holding chain 1's number. The statements are
 * shuffled among repeats of one fixed neutral noise group.
 */
import { buildPrompt } from '../prompt.js';
import { exampleIndices, makeExample, resolveSeed } from '../length.js';
import { integersAtLeast, resolveParams } from '../params.js';
import { firstAnswerTag } from '../answer-tags.js';
import { S, pyCollapseSpaces, pySplit, pyStrip } from '../python-text.js';
import type { SeededRandom } from '../random.js';
import type { GenerateOptions, ScoreResult, Task, TaskExample } from '../types.js';

export interface VtParams {
  numChains: number;
  numHops: number;
}

export interface VtGold {
  /** Chain 1's variables, in assignment order. */
  variables: string[];
  value: number;
  text: string;
}

const NAME = 'vt';
const UPPER = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'];
/** The neutral filler RULER and the original use between the statements (kept verbatim: see docs/tasks.md). */
export const VT_NOISE = 'The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.';
/** The original leaves this many noise groups unused as a margin. */
const NOISE_MARGIN = 5;

const INTRO = `The text below contains variable assignments of two kinds, in no particular order:
1. a number assigned to a variable (for example "VAR QWERT = 24680");
2. one variable assigned to another (for example "VAR ASDFG = VAR QWERT").
Variable names are made of uppercase letters.`;
const ANSWER_FORMAT = 'VARIABLE_ONE VARIABLE_TWO etc.';
const BULLETS = [
  'List only the variables that hold the asked value.',
  'The order of the variables does not matter.',
  'Leave out the "VAR" prefix and any punctuation.',
];

/** The task's question for `value` (also the training-only follow-up turns' question: tools/organism). */
export function vtQuestion(value: number): string {
  return `Which variables hold the value ${value}? A variable holds ${value} if ${value} is assigned to it directly, or if it is assigned a variable that holds ${value}.`;
}

function uniqueNames(rng: SeededRandom, count: number): string[] {
  const names: string[] = [];
  const seen = new Set<string>();
  while (names.length < count) {
    const name = rng.choices(UPPER, 5).join('');
    if (!seen.has(name)) {
      seen.add(name);
      names.push(name);
    }
  }
  return names;
}

/** `count` distinct integers from [lo, hi], in draw order. */
function distinctIntegers(rng: SeededRandom, lo: number, hi: number, count: number): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  while (out.length < count) {
    const v = rng.intBetween(lo, hi);
    if (!seen.has(v)) {
      seen.add(v);
      out.push(v);
    }
  }
  return out;
}

function promptFor(context: string, value: number): string {
  return buildPrompt({ intro: INTRO, plural: false, question: vtQuestion(value), context, answerFormat: ANSWER_FORMAT, bullets: BULLETS });
}

function generate(options: GenerateOptions<VtParams>): TaskExample<VtGold>[] {
  const params = resolveParams(NAME, vtTask.defaults, options.params, (p) => integersAtLeast(p, 1, ['numChains', 'numHops']));
  const seed = resolveSeed(NAME, options.seed);
  return exampleIndices(NAME, options).map((index) =>
    makeExample<VtGold>(NAME, { tokenizer: options.tokenizer, length: options.length, seed, index }, (ctx) => {
      const { rng, counter } = ctx;
      const perChain = params.numHops + 1;
      const names = uniqueNames(rng, params.numChains * perChain);
      // The original draws from range(10000, 99999): 10000 … 99998.
      const values = distinctIntegers(rng, 10000, 99998, params.numChains);
      const statements: string[] = [];
      for (let c = 0; c < params.numChains; c++) {
        const chain = names.slice(c * perChain, (c + 1) * perChain);
        statements.push(`VAR ${chain[0]} = ${values[c]}`);
        for (let h = 1; h < perChain; h++) statements.push(`VAR ${chain[h]} = VAR ${chain[h - 1]}`);
      }
      const target = values[0] as number;
      const withoutNoise = counter.countOnce(promptFor(statements.join(' '), target));
      const groupTokens = counter.count(` ${VT_NOISE}`);
      const groups = Math.max(Math.floor((ctx.rawBudget - withoutNoise) / groupTokens) - NOISE_MARGIN, 0);
      const sentences = rng.shuffle([...statements, ...Array<string>(groups).fill(VT_NOISE)]);
      const variables = names.slice(0, perChain);
      const text = variables.join(' ');
      return {
        prompt: promptFor(sentences.join(' '), target),
        gold: { variables, value: target, text },
        goldTexts: [text],
        meta: { noiseGroups: groups, statements: statements.length },
      };
    }),
  );
}

const VAR_PREFIX = new RegExp(`VAR${S}+`, 'gu');

/** Uppercase, collapse whitespace, delete every "VAR " (anywhere), split on whitespace. */
function variableSet(text: string): Set<string> {
  const upper = pyCollapseSpaces(pyStrip(text.toUpperCase()));
  return new Set(pySplit(upper.replace(VAR_PREFIX, '')));
}

function score(example: Pick<TaskExample<VtGold>, 'gold'>, output: string): ScoreResult {
  const predicted = variableSet(firstAnswerTag(output) ?? output);
  const gold = variableSet(example.gold.text);
  const intersection = [...predicted].filter((v) => gold.has(v)).length;
  const union = new Set([...predicted, ...gold]).size;
  return { score: union === 0 ? 1 : intersection / union, details: { predicted: [...predicted], intersection, union } };
}

export const vtTask: Task<VtParams, VtGold> = {
  name: NAME,
  family: 'ruler',
  metric: 'iou',
  description: 'RULER variable tracking: name the 5 variables that chain 1 copies its number into (8 chains, 4 hops)',
  defaults: { numChains: 8, numHops: 4 },
  smallestLength: 2048,
  generate,
  score,
};
