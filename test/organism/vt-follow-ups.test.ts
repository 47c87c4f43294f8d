/**
 * Run 11b's training-only VT follow-up turns: after a VT example's reply the conversation asks the
 * context's other chains. The first turn must stay the evaluation's example token for token, and every
 * follow-up reply must be a right answer for its own question.
 */
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { getTask, SeededRandom, type TaskExample } from '../../src/tasks/index.js';
import { vtQuestion, type VtGold } from '../../src/tasks/ruler/vt.js';
import { TRAINING_SEED_BASE } from '../../tools/organism/training-format.js';
import { chunkSpec, DEFAULT_PLAN, validatePlan, type CurriculumPlan } from '../../tools/organism/curriculum.js';
import { buildChunk } from '../../tools/organism/generate-data.js';
import { withConfusableNames } from '../../tools/organism/vt-confusable.js';
import { followUpChains, vtChains } from '../../tools/organism/vt-follow-ups.js';
import { ORGANISM_DIR, REPO_ROOT } from './organism-paths.js';

const tokenizer = TextTokenizer.fromDirectory(ORGANISM_DIR);

function vtExample(length: number, seed: number): TaskExample<VtGold> {
  const [example] = getTask('vt').generate({ tokenizer, length, count: 1, seed });
  return example as TaskExample<VtGold>;
}

test('vtChains reads all 8 chains of 5 from the context, the asked one equal to the gold', () => {
  for (const seed of [TRAINING_SEED_BASE + 3, TRAINING_SEED_BASE + 4]) {
    const example = vtExample(2048, seed);
    const chains = vtChains(example.prompt);
    assert.equal(chains.length, 8);
    for (const c of chains) assert.equal(c.variables.length, 5);
    assert.equal(new Set(chains.flatMap((c) => c.variables)).size, 40, 'no variable in two chains');
    assert.deepEqual(chains.find((c) => c.value === example.gold.value)?.variables, example.gold.variables);
    // each chain is a right VT answer for its own value (the task's scorer on a prompt asking that value)
    for (const c of chains) assert.equal(getTask('vt').score({ gold: { ...example.gold, variables: c.variables, value: c.value, text: c.variables.join(' ') } }, c.variables.join(' ')).score, 1);
  }
  assert.throws(() => vtChains('no context here'), /no <context>/);
  assert.throws(() => vtChains('<context>\nVAR AAAAA = 1 VAR BBBBB = VAR AAAAA VAR CCCCC = VAR AAAAA\n</context>'), /two variables/);
});

test('followUpChains: other chains only, deterministic per example, renamed examples in their new names', () => {
  const example = vtExample(2048, TRAINING_SEED_BASE + 11);
  const picked = followUpChains(example, 7);
  assert.equal(picked.length, 7);
  assert.ok(picked.every((c) => c.value !== example.gold.value));
  assert.deepEqual(followUpChains(example, 7), picked, 'a pure function of the example');
  assert.deepEqual(followUpChains(example, 3), picked.slice(0, 3));
  assert.deepEqual(followUpChains(example, 0), []);
  assert.throws(() => followUpChains(example, -1), /whole number/);
  const renamed = withConfusableNames(example, tokenizer, new SeededRandom(9))!.example;
  const names = new Set(vtChains(renamed.prompt).flatMap((c) => c.variables));
  for (const c of followUpChains(renamed, 7)) for (const v of c.variables) assert.ok(names.has(v) && renamed.prompt.includes(`VAR ${v}`));
});

test('a chunk with VT follow-ups: the first turn is the plain example, each follow-up asks and answers another chain', () => {
  const plan: CurriculumPlan = { ...DEFAULT_PLAN, chunkTokens: 16384, taskWeights: { ...DEFAULT_PLAN.taskWeights, vt: 8 }, replyStyle: { workedLookups: true } };
  const spec = chunkSpec(5, { ...plan, minLength: 2048, startMaxLength: 2048, maxLength: 2048 });
  const plain = buildChunk(tokenizer, spec, 'ids').lines.map((l) => JSON.parse(l));
  const withFollowUps = buildChunk(tokenizer, { ...spec, vtFollowUps: 3 }, 'ids').lines.map((l) => JSON.parse(l));
  assert.equal(withFollowUps.length, plain.length);
  let vtRows = 0;
  for (const [k, row] of withFollowUps.entries()) {
    const base = plain[k];
    if (row.task !== 'vt') {
      assert.deepEqual(row, base, 'other tasks unchanged');
      continue;
    }
    vtRows++;
    assert.equal(row.reply_end, base.ids.length);
    assert.deepEqual(row.ids.slice(0, row.reply_end), base.ids, 'the first turn is the evaluation-format example');
    assert.equal(row.follow_ups.length, 3);
    const [example] = getTask('vt').generate({ tokenizer, length: row.length, count: 1, seed: row.seed, firstIndex: row.index });
    let previousEnd = row.reply_end;
    for (const [start, answerStart, end] of row.follow_ups as number[][]) {
      assert.ok(previousEnd < start && start < answerStart && answerStart < end && end <= row.ids.length);
      const turn = tokenizer.decode(row.ids.slice(previousEnd, start), { skipSpecialTokens: false });
      const value = Number(/hold the value (\d+)\?/.exec(turn)![1]);
      assert.equal(turn, `\n<|user|>\n${vtQuestion(value)}<|end|>\n<|assistant|>\n`);
      const reply = tokenizer.decode(row.ids.slice(start, end), { skipSpecialTokens: false });
      assert.ok(reply.endsWith('</answer><|end|>'));
      const chain = vtChains(example!.prompt).find((c) => c.value === value)!;
      assert.notEqual(value, (example!.gold as VtGold).value);
      assert.equal(getTask('vt').score({ gold: { variables: chain.variables, value, text: chain.variables.join(' ') } }, reply).score, 1);
      assert.ok(reply.includes(`The value ${value} is held by ${chain.variables.map((v) => `VAR ${v}`).join(', ')}.`));
      previousEnd = end;
    }
    assert.equal(previousEnd, row.ids.length);
  }
  assert.ok(vtRows >= 2, `the chunk holds VT rows (${vtRows})`);
  assert.throws(() => validatePlan({ ...plan, vtFollowUps: 8 }), /vtFollowUps must be an integer in \[0, 7\]/);
});

test('train.py reads follow-up spans: each reply is trained, the follow-up questions are not', (t) => {
  const probe = spawnSync('python3', ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip('python3 with torch and numpy is not installed');
  const script = `
import sys, json, numpy as np
sys.path.insert(0, ${JSON.stringify(join(REPO_ROOT, 'tools', 'organism'))})
import train
ids = list(range(10, 40))
rows = [("vt", 8, ids, 10, 15, [[18, 20, 24], [27, 28, 30]]), ("niah", 5, ids[:12], 7, 12, [])]
b = train.Batch(rows, 0, 1, np.random.default_rng(0))
T = b.shape[1]
print(json.dumps({"pos": b.ans_pos.tolist(), "tgt": b.ans_tgt.tolist(), "is_answer": b.ans_is_answer.tolist(), "ex": b.ans_ex.tolist(), "T": T}))
`;
  const run = spawnSync('python3', ['-c', script], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const got = JSON.parse(run.stdout.trim().split('\n').pop()!);
  const T = got.T as number;
  const spans: [number, number, number, number][] = [[0, 8, 10, 15], [0, 18, 20, 24], [0, 27, 28, 30], [1, 5, 7, 12]];
  const want = { pos: [] as number[], tgt: [] as number[], is_answer: [] as boolean[], ex: [] as number[] };
  for (const [b, start, answer, end] of spans) {
    for (let i = start; i < end; i++) {
      want.pos.push(b * T + i - 1);
      want.tgt.push(10 + i);
      want.is_answer.push(i >= answer);
      want.ex.push(b);
    }
  }
  assert.deepEqual({ pos: got.pos, tgt: got.tgt, is_answer: got.is_answer, ex: got.ex }, want);
});
