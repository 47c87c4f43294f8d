/**
 * The QA scorers, exactly as the original: the answer is the first case-sensitive `<answer>` pair,
 * stripped ("" without one). Multiple choice keeps only the letters A–D; SQuAD compares normalised
 * token sets with F1 rounded to 2 decimals, the best over the reference answers.
 */
import { firstAnswerTag } from '../answer-tags.js';
import { D, PY_WORD, S, pyRound2, pySplit, pyStrip } from '../python-text.js';

export function extractQaAnswer(output: string): string {
  const tagged = firstAnswerTag(output, { caseSensitive: true });
  return tagged === null ? '' : pyStrip(tagged);
}

const QUESTION_N = new RegExp(`Question${S}*${D}+\\.?${S}*`, 'gu');
const NOT_A_TO_D = /[^A-D]/gu;

/** "Question N" fragments removed, uppercased, every character but A–D deleted, letters sorted. */
export function normalizeMcqAnswer(answer: string): string {
  const text = firstAnswerTag(answer, { caseSensitive: true }) ?? answer;
  const letters = text.replace(QUESTION_N, '').toUpperCase().replace(NOT_A_TO_D, '');
  return [...letters].sort().join('');
}

const PUNCTUATION = new Set([...'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~']);
const ARTICLES = new RegExp(`(?<![${PY_WORD}])(a|an|the|and|or|about|to)(?![${PY_WORD}])`, 'gu');

/** Lowercase, drop ASCII punctuation, blank out a/an/the/and/or/about/to, collapse whitespace. */
export function normalizeOpenAnswer(s: string): string {
  const text = firstAnswerTag(s, { caseSensitive: true }) ?? s;
  const noPunct = [...text.toLowerCase()].filter((ch) => !PUNCTUATION.has(ch)).join('');
  return pySplit(noPunct.replace(ARTICLES, ' ')).join(' ');
}

/** F1 over the SETS of whitespace tokens, rounded to 2 decimals (Python's round). */
export function setF1(prediction: string, gold: string): number {
  const p = new Set(pySplit(prediction));
  const g = new Set(pySplit(gold));
  const tp = [...p].filter((t) => g.has(t)).length;
  const fp = p.size - tp;
  const fn = g.size - tp;
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  if (precision + recall === 0) return 0;
  return pyRound2((2 * (precision * recall)) / (precision + recall));
}
