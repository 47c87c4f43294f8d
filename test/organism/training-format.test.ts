/**
 * The organism's training targets must score 1 under each task's own scorer (otherwise the model
 * learns a format the evaluation does not read), and the curriculum's seeds must stay clear of the
 * evaluation seeds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { getTask, DEFAULT_SEED } from '../../src/tasks/index.js';
import { TRAINING_SEED_BASE, TRAINING_TASKS, chapterLocation, replyParts, targetText } from '../../tools/organism/training-format.js';
import { chunkSpec, DEFAULT_PLAN, SEEDS_PER_CHUNK, difficultyOf, taskOf, taskParams, taskRotation, validatePlan } from '../../tools/organism/curriculum.js';
import { buildChunk, endOfTurnId, parseTaskList, parseTaskWeights } from '../../tools/organism/generate-data.js';
import { ORGANISM_DIR } from './organism-paths.js';

const tokenizer = TextTokenizer.fromDirectory(ORGANISM_DIR);

test('every training task: the target reply scores 1 with the task scorer', () => {
  for (const name of TRAINING_TASKS) {
    const [example] = getTask(name).generate({ tokenizer, length: 4096, count: 1, seed: TRAINING_SEED_BASE + 7 });
    const reply = targetText(example);
    assert.match(reply, /^<explanation>\n[^\n]+\n<\/explanation>\n<answer>\n[\s\S]+\n<\/answer>$/);
    assert.equal(getTask(name).score(example, reply).score, 1, `${name}: ${reply}`);
  }
});

test('QA tasks are refused as training targets (their data is evaluation data)', () => {
  assert.throws(() => targetText({ task: 'qa_squad', gold: { answers: ['x'] } }), /not a training task/);
});

test('chunks: deterministic specs inside the plan, seeds at or above 10^6, rotating tasks', () => {
  validatePlan(DEFAULT_PLAN);
  for (const c of [0, 1, 57, 199, 200, 5000]) {
    const a = chunkSpec(c);
    assert.deepEqual(chunkSpec(c), a);
    assert.ok(a.length >= DEFAULT_PLAN.minLength && a.length <= DEFAULT_PLAN.maxLength, `length ${a.length}`);
    assert.equal(a.length % DEFAULT_PLAN.lengthStep, 0);
    assert.ok(a.length <= DEFAULT_PLAN.startMaxLength || c > 0, 'chunk 0 starts short');
    assert.equal(a.seed, TRAINING_SEED_BASE + c * SEEDS_PER_CHUNK);
    assert.ok(a.seed > DEFAULT_SEED + 10_000, 'far from the evaluation seeds 43 + i');
    assert.notEqual(taskOf(a, 0), taskOf(a, 1));
  }
  assert.throws(() => validatePlan({ ...DEFAULT_PLAN, seedBase: 43 }), /seedBase/);
  assert.throws(() => chunkSpec(-1), /non-negative/);
  assert.equal(chunkSpec(0).difficulty, 1, 'the default plan trains on the evaluation parameters throughout');
});

test('a resumed plan restarts the length and difficulty ramps at rampStart', () => {
  const plan = { ...DEFAULT_PLAN, rampStart: 1130, easyChunks: 100, rampChunks: 150, startMaxLength: 2048 };
  validatePlan(plan);
  assert.equal(chunkSpec(1130, plan).difficulty, 0);
  assert.equal(chunkSpec(1180, plan).difficulty, 0.5);
  assert.equal(chunkSpec(1230, plan).difficulty, 1);
  for (let c = 1130; c < 1140; c++) {
    const upper = 2048 + ((8192 - 2048) * (c - 1130)) / 150 + plan.lengthStep;
    assert.ok(chunkSpec(c, plan).length <= upper, `chunk ${c} is short again`);
  }
  assert.throws(() => validatePlan({ ...plan, easyChunks: -1 }), /easyChunks/);
});

test('easy task parameters grow to the defaults, and easy instances keep the scorers\' format', () => {
  assert.equal(taskParams('niah', 1), undefined);
  assert.deepEqual(taskParams('niah', 0), { numQueries: 1, groups: 2, groupLength: 4 });
  assert.deepEqual(taskParams('vt', 0), { numChains: 2, numHops: 1 });
  assert.deepEqual(taskParams('niah', 0.99), getTask('niah').defaults);
  assert.equal(taskParams('cwe', 0), undefined, 'CWE keeps its ten-word answer');
  assert.throws(() => taskParams('niah', 1.5), /difficulty/);
  for (const name of ['niah', 'vt'] as const) {
    const params = taskParams(name, 0);
    const [example] = getTask(name).generate({ tokenizer, length: 2048, count: 1, seed: TRAINING_SEED_BASE + 11, params });
    assert.equal(getTask(name).score(example, targetText(example)).score, 1, name);
  }
  const [easy] = getTask('niah').generate({ tokenizer, length: 2048, count: 1, seed: TRAINING_SEED_BASE + 11, params: taskParams('niah', 0) });
  assert.match(targetText(easy), /<answer>\n1\. The answer for [a-z0-9]{4}-[a-z0-9]{4} is [a-z0-9]{4}-[a-z0-9]{4}\.\n<\/answer>$/);
});

test('task weights: equal weights rotate the six tasks as before, weight 2 doubles a task\'s share', () => {
  assert.deepEqual(taskRotation(DEFAULT_PLAN.taskWeights), [...TRAINING_TASKS]);
  const weights = parseTaskWeights('niah=2,vt=2,story_retrieval=2');
  assert.deepEqual(taskRotation(weights), [...TRAINING_TASKS, 'niah', 'vt', 'story_retrieval']);
  const plan = { ...DEFAULT_PLAN, taskWeights: weights };
  validatePlan(plan);
  const spec = chunkSpec(3, plan);
  const counts = new Map<string, number>();
  for (let j = 0; j < 9 * 4; j++) counts.set(taskOf(spec, j), (counts.get(taskOf(spec, j)) ?? 0) + 1);
  assert.equal(counts.get('niah'), 8);
  assert.equal(counts.get('cwe'), 4);
  assert.throws(() => parseTaskWeights('qa_squad=2'), /names no training task/);
  assert.throws(() => validatePlan({ ...DEFAULT_PLAN, taskWeights: { ...weights, cwe: 0 } }), /taskWeights\.cwe/);
});

test('easy query counts: NIAH and story retrieval start from the plan\'s counts and reach the defaults', () => {
  const easy = { niah: 8, storyRetrieval: 6 };
  assert.deepEqual(taskParams('niah', 0, easy), { numQueries: 8, groups: 2, groupLength: 4 });
  assert.deepEqual(taskParams('story_retrieval', 0, easy), { numQueries: 6 });
  assert.equal(taskParams('niah', 0.5, easy)?.numQueries, 6);
  assert.equal(taskParams('niah', 1, easy), undefined);
  assert.deepEqual(chunkSpec(0, { ...DEFAULT_PLAN, easyNiahQueries: 8, easyStoryQueries: 6, easyChunks: 10 }).easy, easy);
  assert.throws(() => validatePlan({ ...DEFAULT_PLAN, easyNiahQueries: 0 }), /easyNiahQueries/);
  const [example] = getTask('niah').generate({ tokenizer, length: 1024, count: 1, seed: TRAINING_SEED_BASE + 13, params: taskParams('niah', 0, easy) });
  assert.equal(getTask('niah').score(example, targetText(example)).score, 1);
  assert.equal((example.gold as { answers: unknown[] }).answers.length, 8);
});

test('easy tasks: only the named tasks follow the difficulty ramp, the others stay at their defaults', () => {
  const plan = { ...DEFAULT_PLAN, rampStart: 8000, easyChunks: 100, easyTasks: parseTaskList('vt,story_retrieval', 'easy-tasks') };
  const spec = chunkSpec(8000, plan);
  assert.equal(spec.difficulty, 0);
  assert.equal(difficultyOf(spec, 'vt'), 0);
  assert.equal(difficultyOf(spec, 'story_retrieval'), 0);
  assert.equal(difficultyOf(spec, 'niah'), 1, 'NIAH is not sent back to easy instances');
  assert.equal(difficultyOf(chunkSpec(8000, { ...plan, easyTasks: undefined }), 'niah'), 0, 'absent: every task is eased');
  assert.throws(() => parseTaskList('vt,qa_squad', 'easy-tasks'), /qa_squad.*names no training task/);
  const chunk = buildChunk(tokenizer, { ...spec, length: 2048, examples: 12 }, 'ids');
  const niahAnswers = chunk.lines.map((l) => JSON.parse(l) as { task: string; answer_start: number; answer_end: number }).filter((r) => r.task === 'niah');
  assert.ok(niahAnswers.length > 0);
  // default NIAH: 4 queries of 4 × 8-character codes, far longer answers than the easy 2 × 4
  for (const r of niahAnswers) assert.ok(r.answer_end - r.answer_start > 100, `NIAH answer of ${r.answer_end - r.answer_start} tokens`);
});

test('VT answers with the "VAR " prefix: still score 1, and every answer variable is tokenised as in the prompt', () => {
  const plan = { ...DEFAULT_PLAN, replyStyle: { vtVarPrefix: true } };
  const spec = { ...chunkSpec(3, plan), length: 2048, examples: 6, rotation: ['vt'] as const };
  const chunk = buildChunk(tokenizer, spec, 'ids');
  assert.equal(chunk.lines.length, 6);
  const [vt] = getTask('vt').generate({ tokenizer, length: 2048, count: 1, seed: spec.seed, firstIndex: 0 });
  const gold = (vt!.gold as { variables: string[] }).variables;
  assert.equal(replyParts(vt!, spec.replyStyle).answer, gold.map((v) => `VAR ${v}`).join(' '));
  assert.equal(getTask('vt').score(vt!, targetText(vt!, spec.replyStyle)).score, 1);
  const row = JSON.parse(chunk.lines[0] as string) as { ids: number[]; prompt_tokens: number; answer_start: number; answer_end: number };
  assert.deepEqual(row.ids.slice(row.prompt_tokens, -1), tokenizer.encode(targetText(vt!, spec.replyStyle)));
  // the first variable's name tokens in the answer (after the one "VAR" token) are those of the prompt
  const prompt = row.ids.slice(0, row.prompt_tokens);
  const answer = row.ids.slice(row.answer_start, row.answer_end);
  const name = tokenizer.encode(` ${gold[0]}`);
  assert.deepEqual(answer.slice(0, 1 + name.length), [...tokenizer.encode('VAR'), ...name]);
  const holds = (ids: number[]) => ids.some((_, i) => name.every((t, k) => ids[i + k] === t));
  assert.ok(holds(prompt), 'the prompt holds the same name tokens');
  // without the prefix the first variable is tokenised differently from the prompt (why the knob exists)
  assert.ok(!holds(tokenizer.encode(`<answer>\n${gold[0]}`)));
});

test('a chunk: prompt ids are the task input, the reply ends with the end-of-turn id', () => {
  const spec = { index: 0, length: 2048, examples: 3, firstTask: 0, seed: TRAINING_SEED_BASE, difficulty: 1 };
  const chunk = buildChunk(tokenizer, spec, 'ids');
  assert.ok(chunk.lines.length >= 1);
  const end = endOfTurnId(tokenizer);
  for (const line of chunk.lines) {
    const row = JSON.parse(line) as { task: string; prompt_tokens: number; answer_start: number; answer_end: number; ids: number[]; seed: number; index: number };
    assert.ok(row.prompt_tokens <= 2048 && row.prompt_tokens >= 0.9 * 2048);
    assert.equal(row.ids[row.ids.length - 1], end);
    const reply = tokenizer.decode(row.ids.slice(row.prompt_tokens, -1), { skipSpecialTokens: false });
    assert.match(reply, /^<explanation>[\s\S]*<\/answer>$/);
    // The answer span is the gold answer, and part-by-part tokenisation gave the whole reply's ids.
    assert.ok(row.prompt_tokens < row.answer_start && row.answer_start < row.answer_end && row.answer_end < row.ids.length - 1);
    const [example] = getTask(row.task).generate({ tokenizer, length: 2048, count: 1, seed: row.seed, firstIndex: row.index });
    assert.equal(tokenizer.decode(row.ids.slice(row.answer_start, row.answer_end), { skipSpecialTokens: false }), replyParts(example).answer);
    assert.deepEqual(row.ids.slice(row.prompt_tokens, -1), tokenizer.encode(targetText(example)));
    assert.ok(row.seed >= TRAINING_SEED_BASE);
  }
});

test('worked lookups (run 7): VT and story-retrieval replies still score 1, with the lookups in the answer span', () => {
  const style = { workedLookups: true };
  for (const [name, length, params] of [['vt', 2048, undefined], ['vt', 2048, taskParams('vt', 0)], ['story_retrieval', 4096, undefined], ['story_retrieval', 2048, taskParams('story_retrieval', 0)]] as const) {
    const [example] = getTask(name).generate({ tokenizer, length, count: 1, seed: TRAINING_SEED_BASE + 17, ...(params ? { params } : {}) });
    const reply = targetText(example!, style);
    assert.equal(getTask(name).score(example!, reply).score, 1, `${name}: ${reply}`);
    const parts = replyParts(example!, style);
    assert.equal(parts.head, '<explanation>\n', 'the example-specific explanation is weighted as answer');
    assert.match(parts.answer, /\n<\/explanation>\n<answer>\n/);
  }
  // the other tasks keep the replies runs 1–6 trained on
  const [niah] = getTask('niah').generate({ tokenizer, length: 1024, count: 1, seed: TRAINING_SEED_BASE + 17 });
  assert.equal(targetText(niah!, style), targetText(niah!));
  assert.throws(() => replyParts({ task: 'vt', gold: { variables: ['A'], value: 1, text: 'A' } }, style), /need the example's prompt/);
});

test('worked lookups: every VT variable is written with the prompt\'s tokens, right after the key it is found from', () => {
  const [vt] = getTask('vt').generate({ tokenizer, length: 2048, count: 1, seed: TRAINING_SEED_BASE + 19 });
  const gold = vt!.gold as { variables: string[]; value: number };
  const { answer } = replyParts(vt!, { workedLookups: true });
  assert.equal(answer.split('\n')[0], `The value ${gold.value} is held by ${gold.variables.map((v) => `VAR ${v}`).join(', ')}.`);
  const prompt = vt!.inputIds;
  const ids = tokenizer.encode(answer);
  const holds = (hay: number[], needle: number[]) => hay.some((_, i) => needle.every((t, k) => hay[i + k] === t));
  for (const v of gold.variables) {
    const name = tokenizer.encode(` ${v}`);
    assert.ok(holds(prompt, [...tokenizer.encode(' VAR'), ...name]) || holds(prompt, [...tokenizer.encode('VAR'), ...name]), `${v} in the prompt`);
    assert.ok(holds(ids, name), `${v} in the reply with the prompt's tokens`);
  }
  // the value is tokenised in the explanation as in the question
  assert.ok(holds(prompt, tokenizer.encode(` value ${gold.value}`)) && holds(ids, tokenizer.encode(` value ${gold.value}`)));
  // the answer block's first name too (the leading space): the scorer splits on whitespace
  const block = answer.split('<answer>\n')[1] as string;
  assert.deepEqual(tokenizer.encode(block).slice(0, tokenizer.encode(` ${gold.variables[0]}`).length), tokenizer.encode(` ${gold.variables[0]}`));
});

test('worked lookups: story retrieval names each asked chapter and its location, read from the prompt', () => {
  const [ex] = getTask('story_retrieval').generate({ tokenizer, length: 4096, count: 1, seed: TRAINING_SEED_BASE + 23 });
  const gold = ex!.gold as { questions: { chapter: number; type: string; answer: string }[] };
  const lines = replyParts(ex!, { workedLookups: true }).answer.split('\n</explanation>')[0]!.split('\n');
  assert.equal(lines.length, gold.questions.length);
  gold.questions.forEach((q, k) => {
    const location = chapterLocation(ex!.prompt, q.chapter);
    assert.ok(ex!.prompt.includes(`Chapter ${q.chapter}:\n`) && ex!.prompt.split(`Chapter ${q.chapter}:\n`)[1]!.split('\n')[0]!.includes(location));
    if (q.type === 'location') assert.equal(location, q.answer);
    assert.equal(lines[k], `${k + 1}. Chapter ${q.chapter}, in ${location}: ${q.answer}.`);
  });
  assert.throws(() => chapterLocation(ex!.prompt, 999), /no "Chapter 999:" heading/);
  // a chunk with the style: the answer span and the whole reply tokenise as the parts do
  const plan = { ...DEFAULT_PLAN, replyStyle: { workedLookups: true } };
  const spec = { ...chunkSpec(5, plan), length: 4096, examples: 4, rotation: ['story_retrieval', 'vt'] as const };
  const chunk = buildChunk(tokenizer, spec, 'ids');
  assert.equal(chunk.lines.length, 4);
  for (const line of chunk.lines) {
    const row = JSON.parse(line) as { task: string; ids: number[]; prompt_tokens: number; answer_start: number; answer_end: number; seed: number; index: number };
    const [example] = getTask(row.task).generate({ tokenizer, length: 4096, count: 1, seed: row.seed, firstIndex: row.index });
    assert.deepEqual(row.ids.slice(row.prompt_tokens, -1), tokenizer.encode(targetText(example!, spec.replyStyle)));
    assert.equal(tokenizer.decode(row.ids.slice(row.answer_start, row.answer_end), { skipSpecialTokens: false }), replyParts(example!, spec.replyStyle).answer);
  }
});
