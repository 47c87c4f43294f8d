/**
 * Scorers against hand-worked cases: right, wrong and partial answers for every task, plus the
 * extraction and normalisation rules of the original (expected values follow its Python code;
 * the same rules were also checked against it on 3,200 generated outputs, see docs/tasks.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getTask } from '../../src/tasks/index.js';
import { setF1, normalizeOpenAnswer, normalizeMcqAnswer } from '../../src/tasks/qa/score.js';

const score = (task: string, gold: unknown, output: string): number | null => getTask(task).score({ gold }, output).score;
const tagged = (s: string): string => `<explanation>I looked.</explanation>\n<answer>\n${s}\n</answer>`;

test('niah: all right, partial, wrong key, wrong order, untagged, first occurrence wins', () => {
  const answers = [
    ['aaaa1111-bbbb2222-cccc3333-dddd4444', 'v1v1v1v1-x2x2x2x2-y3y3y3y3-z4z4z4z4'],
    ['eeee5555-ffff6666-gggg7777-hhhh8888', 'w1w1w1w1-q2q2q2q2-r3r3r3r3-s4s4s4s4'],
  ];
  const gold = { answers, text: '' };
  const right = answers.map(([k, v], i) => `${i + 1}. The answer for ${k} is ${v}.`).join('\n');
  assert.equal(score('niah', gold, tagged(right)), 1);
  // No tags: the whole output is read. "is:" and upper-case values are accepted.
  assert.equal(score('niah', gold, `1. the ANSWER for ${answers[0]![0]} is: ${answers[0]![1]!.toUpperCase()}\n2. The answer for ${answers[1]![0]} is   ${answers[1]![1]}`), 1);
  assert.equal(score('niah', gold, tagged(`1. The answer for ${answers[0]![0]} is ${answers[0]![1]}.\n2. The answer for ${answers[1]![0]} is nope.`)), 0.5);
  // The key must be written exactly (case-sensitive).
  assert.equal(score('niah', gold, tagged(`1. The answer for ${answers[0]![0].toUpperCase()} is ${answers[0]![1]}.`)), 0);
  // Numbers matter: swapped numbering scores nothing.
  assert.equal(score('niah', gold, tagged(`2. The answer for ${answers[0]![0]} is ${answers[0]![1]}.\n1. The answer for ${answers[1]![0]} is ${answers[1]![1]}.`)), 0);
  // First occurrence of a number wins.
  assert.equal(score('niah', gold, tagged(`1. The answer for ${answers[0]![0]} is wrong.\n1. The answer for ${answers[0]![0]} is ${answers[0]![1]}.`)), 0);
  // The value ends at the first period.
  assert.equal(score('niah', gold, tagged(`1. The answer for ${answers[0]![0]} is ${answers[0]![1]}. More text\n`)), 0.5);
  assert.equal(score('niah', gold, 'I do not know'), 0);
});

test('vt: IoU over variable sets; VAR prefix removed; untagged read whole; both empty is 1', () => {
  const gold = { variables: ['ABCDE', 'FGHIJ', 'KLMNO', 'PQRST', 'UVWXY'], value: 12345, text: 'ABCDE FGHIJ KLMNO PQRST UVWXY' };
  assert.equal(score('vt', gold, tagged('ABCDE FGHIJ KLMNO PQRST UVWXY')), 1);
  assert.equal(score('vt', gold, tagged('var abcde VAR fghij klmno pqrst uvwxy')), 1);
  assert.equal(score('vt', gold, tagged('ABCDE FGHIJ ZZZZZ')), 2 / 6);
  // Punctuation stays attached: "ABCDE," does not match, FGHIJ does.
  assert.equal(score('vt', gold, tagged('ABCDE, FGHIJ')), 1 / 6);
  assert.equal(score('vt', gold, 'ABCDE FGHIJ KLMNO'), 3 / 5);
  assert.equal(score('vt', { ...gold, text: '' }, tagged('')), 1);
});

test('cwe: tags required; numbered lines only; IoU with the gold words', () => {
  const commonWords = ['apple', 'ad hoc', 'atm', 'zebra'];
  const gold = { commonWords, text: '' };
  assert.equal(score('cwe', gold, tagged('1. apple\n2. Ad Hoc\n3) ATM\n4- zebra')), 1);
  assert.equal(score('cwe', gold, tagged('1. apple\n2. zebra\n3. pear')), 2 / 5);
  // Lines without a leading number are ignored; trailing punctuation is kept.
  assert.equal(score('cwe', gold, tagged('apple\n2. zebra.\n3 atm')), 1 / 5);
  assert.equal(score('cwe', gold, '1. apple\n2. ad hoc\n3. atm\n4. zebra'), 0, 'untagged scores 0');
  assert.equal(score('cwe', { commonWords: [], text: '' }, tagged('')), 0, 'empty union scores 0');
});

test('story retrieval: numbered answers, one leading article stripped, fraction right', () => {
  const gold = { questions: [], text: '1. Carthago Nova\n2. Aelia\n3. battered brass brooch' };
  assert.equal(score('story_retrieval', gold, tagged('1. Carthago Nova\n2: aelia\n3) the battered brass brooch')), 1);
  assert.equal(score('story_retrieval', gold, tagged('1. Rome\n2. Aelia\n3. brass brooch')), 1 / 3);
  assert.equal(score('story_retrieval', gold, '1. carthago  nova\n3. A battered brass brooch'), 2 / 3, 'untagged output is read whole');
  assert.equal(score('story_retrieval', gold, tagged('Carthago Nova, Aelia')), 0);
});

test('story multi-hop: exact match after normalisation; untagged or empty answers are dropped', () => {
  const gold = { answer: 'gleaming iron compass', targetItem: 'tin cup', targetChapter: 4 };
  assert.equal(score('story_multihop', gold, tagged('The Gleaming  Iron Compass')), 1);
  assert.equal(score('story_multihop', gold, tagged('tin cup')), 0);
  assert.equal(score('story_multihop', gold, tagged('gleaming iron compass.')), 0);
  assert.equal(score('story_multihop', gold, 'gleaming iron compass'), null);
  assert.equal(score('story_multihop', gold, tagged('  ')), null);
});

test('story filtering: IoU of chapter numbers; "Chapter N" mentions win; empty output dropped', () => {
  const gold = { chapters: [3, 11, 27], text: '3, 11, 27' };
  assert.equal(score('story_filtering', gold, tagged('3, 11, 27')), 1);
  assert.equal(score('story_filtering', gold, tagged('Chapter 3, chapter 11 and Chapter 40 (see 27)')), 2 / 4);
  assert.equal(score('story_filtering', gold, tagged('3 11 5')), 2 / 4);
  assert.equal(score('story_filtering', gold, '3, 11, 27'), 0, 'untagged scores 0');
  assert.equal(score('story_filtering', gold, '   '), null);
});

test('qa multiple choice: letters A–D only, sorted; "Question N" removed; QA tags are case-sensitive', () => {
  const gold = { multipleChoice: true, answers: ['AC'], question: '', targetDocument: 1 };
  assert.equal(score('qa_quality', gold, tagged('CA')), 1);
  assert.equal(score('qa_quality', gold, tagged('Question 2. a, c')), 1);
  assert.equal(score('qa_quality', gold, tagged('A')), 0);
  // Every A–D letter counts, even inside words ("Answer" contributes an A).
  assert.equal(score('qa_quality', gold, tagged('Answer: C')), 1);
  assert.equal(score('qa_toefl', gold, '<ANSWER>AC</ANSWER>'), 0);
  assert.equal(score('qa_toefl', gold, 'AC'), 0);
  assert.equal(normalizeMcqAnswer('Question 3. b and d, Question12 A'), 'AABDD');
});

test('qa squad: normalisation, F1 over token sets rounded like Python, best over gold answers', () => {
  const gold = { multipleChoice: false, answers: ['the 10th and 11th centuries', '10th century'], question: '', targetDocument: 1 };
  assert.equal(score('qa_squad', gold, tagged('10th and 11th centuries')), 1);
  assert.equal(score('qa_squad', gold, tagged('in the 10th century')), 0.8);
  assert.equal(score('qa_squad', gold, tagged('Denmark')), 0);
  assert.equal(score('qa_squad', gold, '10th century'), 0, 'untagged scores 0');
  assert.equal(normalizeOpenAnswer('The Café-au-lait, an  éa and THE end'), 'caféaulait éa end');
  // Exact binary ties round half to even, as Python's round() does.
  const mk = (tp: number, extra: number, p: string): string =>
    [...Array.from({ length: tp }, (_, i) => `x${i}`), ...Array.from({ length: extra }, (_, i) => `${p}${i}`)].join(' ');
  const cases: [number, number, number][] = [[1, 7, 0.12], [3, 5, 0.38], [5, 3, 0.62], [7, 1, 0.88], [1, 2, 0.33], [2, 1, 0.67]];
  for (const [tp, extra, expected] of cases) assert.equal(setF1(mk(tp, extra, 'p'), mk(tp, extra, 'g')), expected, `tp ${tp}, extra ${extra}`);
  // Sets, not bags: repeated words count once.
  assert.equal(setF1('rollo rollo rollo', 'rollo'), 1);
});
