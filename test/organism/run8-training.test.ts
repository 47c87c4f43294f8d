/**
 * Run 8's training-side changes (training only; the SPEC's tasks and scorers are untouched):
 * VT instances with confusable variable names, worked multi-hop explanations, long (12–16K) chunks.
 */
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { getTask, SeededRandom, type TaskExample } from '../../src/tasks/index.js';
import { VT_NOISE, type VtGold } from '../../src/tasks/ruler/vt.js';
import { TRAINING_SEED_BASE, chapterText, replyParts, targetText } from '../../tools/organism/training-format.js';
import { chunkSpec, DEFAULT_PLAN, taskParams, validatePlan } from '../../tools/organism/curriculum.js';
import { buildChunk, confusableVariant, shareArg } from '../../tools/organism/generate-data.js';
import { confusableNames, contextVariables, renameDraw, withConfusableNames } from '../../tools/organism/vt-confusable.js';
import { copyProbeRows, nameSpans } from '../../tools/organism/vt-copy-probe.js';
import { ORGANISM_DIR, REPO_ROOT } from './organism-paths.js';

const tokenizer = TextTokenizer.fromDirectory(ORGANISM_DIR);

function vtExample(length: number, seed: number, params?: Record<string, number>): TaskExample<VtGold> {
  const [example] = getTask('vt').generate({ tokenizer, length, count: 1, seed, ...(params ? { params } : {}) });
  return example as TaskExample<VtGold>;
}

/** The chain from the asked value, read from the context's statements (what a solver must do). */
function followChain(prompt: string, value: number): string[] {
  const context = prompt.split('<context>\n')[1]!.split('\n</context>')[0]!;
  const chain = [new RegExp(`VAR ([A-Z]{5}) = ${value}(?!\\d)`).exec(context)![1]!];
  for (;;) {
    const next = new RegExp(`VAR ([A-Z]{5}) = VAR ${chain[chain.length - 1]}(?![A-Z])`).exec(context);
    if (!next) return chain;
    chain.push(next[1]!);
  }
}

test('confusable VT names: every name shares a prefix with another, the chains and the score are kept', () => {
  for (const [length, params] of [[2048, taskParams('vt', 0)], [2048, undefined], [8192, undefined]] as const) {
    const original = vtExample(length, TRAINING_SEED_BASE + 31, params);
    const result = withConfusableNames(original, tokenizer, new SeededRandom(5));
    assert.ok(result, 'fits');
    const { example, renaming } = result;
    const before = contextVariables(original.prompt);
    const after = contextVariables(example.prompt);
    assert.equal(after.length, before.length);
    assert.deepEqual(after, before.map((v) => renaming.get(v)), 'every variable renamed, one for one');
    assert.equal(new Set(after).size, after.length, 'names stay distinct');
    for (const name of after) {
      assert.match(name, /^[A-Z]{5}$/);
      assert.ok(after.some((other) => other !== name && other[0] === name[0]), `${name} shares its first letter`);
    }
    // the puzzle is the same one: the renamed chain from the value is the renamed gold, and the target scores 1
    assert.deepEqual(followChain(example.prompt, example.gold.value), example.gold.variables);
    assert.deepEqual(example.gold.variables, original.gold.variables.map((v) => renaming.get(v)));
    assert.equal(getTask('vt').score(example, targetText(example, { workedLookups: true })).score, 1);
    assert.equal(getTask('vt').score(example, original.gold.text).score, 0, 'the old names are no answer any more');
    // prompt frame untouched (the intro's example names too), ids are the prompt's own, within the length
    assert.equal(example.prompt.split('<context>')[0], original.prompt.split('<context>')[0]);
    assert.ok(example.prompt.includes('"VAR ASDFG = VAR QWERT"'));
    assert.deepEqual(example.inputIds, tokenizer.encodeUserPrompt(example.prompt));
    assert.equal(example.inputLength, example.inputIds.length);
    assert.ok(example.inputLength <= length);
    assert.equal(example.rawLength, tokenizer.encode(example.prompt).length);
  }
});

test('confusable names: a renamed prompt that outgrows the length loses filler groups, never statements', () => {
  const original = vtExample(2048, TRAINING_SEED_BASE + 43);
  const fillers = (prompt: string) => prompt.split(VT_NOISE).length - 1;
  const tight = { ...original, length: original.inputLength - 60 };
  const result = withConfusableNames(tight, tokenizer, new SeededRandom(3));
  assert.ok(result);
  assert.ok(result.example.inputLength <= tight.length, `${result.example.inputLength} > ${tight.length}`);
  assert.ok(fillers(result.example.prompt) < fillers(original.prompt) && fillers(result.example.prompt) > 0);
  assert.equal(contextVariables(result.example.prompt).length, contextVariables(original.prompt).length);
  assert.deepEqual(followChain(result.example.prompt, result.example.gold.value), result.example.gold.variables);
  assert.doesNotMatch(result.example.prompt, /  |\n | \n/, 'no doubled or dangling spaces where groups went');
  assert.equal(withConfusableNames({ ...original, length: 600 }, tokenizer, new SeededRandom(3)), null, 'statements alone too long: left as generated');
});

test('confusable names: groups of 2–5 share a 1–4 letter prefix; bad input is refused', () => {
  const names = Array.from({ length: 40 }, (_, i) => `N${String.fromCharCode(65 + (i % 26))}${String.fromCharCode(65 + Math.floor(i / 26))}AA`);
  const renaming = confusableNames(new SeededRandom(9), names);
  const fresh = [...renaming.values()];
  assert.equal(new Set(fresh).size, 40);
  for (const name of fresh) {
    const longestShared = Math.max(...fresh.filter((o) => o !== name).map((o) => [...o].findIndex((ch, k) => ch !== name[k])));
    assert.ok(longestShared >= 1 && longestShared <= 4, `${name}: shares ${longestShared} letters`);
  }
  assert.throws(() => confusableNames(new SeededRandom(1), ['ABCDE']), /at least 2/);
  assert.throws(() => renameDraw(1, 0, 1.5), /\[0, 1\]/);
  const [niah] = getTask('niah').generate({ tokenizer, length: 1024, count: 1, seed: TRAINING_SEED_BASE });
  assert.throws(() => withConfusableNames(niah as TaskExample<VtGold>, tokenizer, new SeededRandom(1)), /for VT examples/);
});

test('confusable share in a chunk: the marked VT rows are exactly the renamed examples', () => {
  const plan = { ...DEFAULT_PLAN, replyStyle: { workedLookups: true }, vtConfusableShare: 0.5 };
  validatePlan(plan);
  const spec = { ...chunkSpec(7, plan), length: 2048, examples: 8, rotation: ['vt'] as const };
  const chunk = buildChunk(tokenizer, spec, 'ids');
  assert.equal(chunk.lines.length, 8);
  let marked = 0;
  for (const line of chunk.lines) {
    const row = JSON.parse(line) as { ids: number[]; prompt_tokens: number; seed: number; index: number; vt_names?: string };
    const [generated] = getTask('vt').generate({ tokenizer, length: 2048, count: 1, seed: row.seed, firstIndex: row.index });
    const example = confusableVariant(tokenizer, generated as TaskExample<VtGold>, 0.5);
    assert.equal(row.vt_names === 'confusable', example !== generated);
    if (row.vt_names) marked++;
    assert.deepEqual(row.ids.slice(0, row.prompt_tokens), example.inputIds);
    assert.deepEqual(row.ids.slice(row.prompt_tokens, -1), tokenizer.encode(targetText(example, spec.replyStyle)));
  }
  assert.ok(marked > 0 && marked < 8, `${marked} of 8 renamed at share 0.5`);
  const none = buildChunk(tokenizer, { ...spec, vtConfusableShare: 0, examples: 2 }, 'ids');
  assert.ok(none.lines.every((l) => !l.includes('vt_names')));
  assert.throws(() => validatePlan({ ...plan, vtConfusableShare: 2 }), /vtConfusableShare/);
  assert.throws(() => shareArg('x', 'vt-confusable'), /--vt-confusable must be a number in \[0, 1\]/);
  assert.throws(() => shareArg('', 'long-share'), /--long-share/);
});

test('worked multi-hop: the hops are written out from the prompt, the answer block still scores 1', () => {
  const style = { workedMultihop: true };
  for (const length of [1024, 4096]) {
    const [example] = getTask('story_multihop').generate({ tokenizer, length, count: 1, seed: TRAINING_SEED_BASE + 37 });
    const gold = example!.gold as { answer: string; targetItem: string; targetChapter: number };
    const reply = targetText(example!, style);
    assert.equal(getTask('story_multihop').score(example!, reply).score, 1, reply);
    const parts = replyParts(example!, style);
    assert.equal(parts.head, '<explanation>\n', 'the explanation is example-specific: weighted as answer');
    const t = gold.targetChapter;
    assert.equal(
      parts.answer,
      `The ${gold.targetItem} was bought in Chapter ${t}; in Chapter ${t - 1}, just before it, Arion bought the ${gold.answer}.\n</explanation>\n<answer>\n${gold.answer}`,
    );
    assert.ok(chapterText(example!.prompt, t).includes(gold.targetItem) && chapterText(example!.prompt, t - 1).includes(gold.answer));
    // the hop keys are tokenised in the reply as in the prompt (the item from the question, the purchase)
    const holds = (hay: number[], needle: number[]) => hay.some((_, i) => needle.every((tok, k) => hay[i + k] === tok));
    const replyIds = tokenizer.encode(parts.answer);
    for (const item of [gold.targetItem, gold.answer]) {
      const ids = tokenizer.encode(` ${item}`);
      assert.ok(holds(example!.inputIds, ids) && holds(replyIds, ids), item);
    }
    // each flag changes only its own tasks
    assert.equal(targetText(example!, { workedLookups: true }), targetText(example!));
  }
  const vt = vtExample(2048, TRAINING_SEED_BASE + 37);
  assert.equal(targetText(vt, style), targetText(vt));
  assert.throws(() => replyParts({ task: 'story_multihop', gold: { answer: 'x', targetItem: 'y', targetChapter: 1 }, prompt: '' }, style), /targetChapter/);
});

test('long chunks: a share of chunks at 12–16K; without the option the specs are those of before', () => {
  const base = { ...DEFAULT_PLAN, rampStart: 20000, startMaxLength: 8192, chunkTokens: 65536 };
  const long = { ...base, longShare: 0.125, longMinLength: 12288, longMaxLength: 16384 };
  validatePlan(long);
  let count = 0;
  for (let c = 20000; c < 20800; c++) {
    const plain = chunkSpec(c, base);
    const spec = chunkSpec(c, long);
    assert.equal(spec.firstTask, plain.firstTask, 'task order is unchanged');
    if (spec.long) {
      count++;
      assert.ok(spec.length >= 12288 && spec.length <= 16384 && spec.length % 64 === 0, `length ${spec.length}`);
      assert.equal(spec.examples, Math.floor(65536 / spec.length));
    } else assert.deepEqual(spec, plain);
  }
  assert.ok(count > 60 && count < 140, `${count} long chunks of 800 at share 1/8`);
  assert.equal(chunkSpec(20001, { ...base, longShare: 0 }).long, undefined);
  assert.throws(() => validatePlan({ ...long, longMinLength: 20000 }), /longMinLength/);
  assert.throws(() => validatePlan({ ...long, chunkTokens: 12000, maxLength: 8192 }), /longMaxLength example/);
  // a long chunk's examples are made at its length (story retrieval, VT fit at 16K)
  const spec = { ...chunkSpec(20000, long), length: 16384, examples: 2, rotation: ['vt', 'story_multihop'] as const };
  const chunk = buildChunk(tokenizer, spec, 'ids');
  assert.equal(chunk.lines.length, 2);
  for (const line of chunk.lines) {
    const row = JSON.parse(line) as { prompt_tokens: number; length: number };
    assert.equal(row.length, 16384);
    assert.ok(row.prompt_tokens <= 16384 && row.prompt_tokens >= 0.9 * 16384);
  }
});

test('VT copy probe: each span holds one chain name with the prompt\'s tokens, for both kinds of instance', () => {
  const rows = copyProbeRows(tokenizer, 2, 2048, TRAINING_SEED_BASE + 41);
  assert.deepEqual(rows.map((r) => r.kind), ['uniform', 'confusable', 'uniform', 'confusable']);
  for (const row of rows) {
    assert.equal(row.spans.length, 5, 'a default chain has 5 names');
    const names = row.spans.map(([a, b]) => tokenizer.decode(row.ids.slice(a, b), { skipSpecialTokens: false }));
    for (const name of names) assert.match(name, /^ [A-Z]{5}$/);
    const reply = tokenizer.decode(row.ids.slice(row.spans[0]![0] - 8), { skipSpecialTokens: false });
    assert.ok(reply.includes(`is held by VAR${names[0]}, VAR${names[1]}`), reply);
  }
  assert.throws(() => nameSpans(tokenizer, 'The value 1 is held by VAR ABCDE.', ['XYZZY'], 0), /names no "VAR XYZZY"/);
  assert.throws(() => copyProbeRows(tokenizer, 1, 2048, 43), /clear of the evaluation seeds/);
});

/** train.py's data order (tools/organism/data_order.py), or null where python3 is missing. */
function dataOrder(reuse: number, lag: number, start: number, first: number, fresh: boolean, steps: number): number[] | null {
  const run = spawnSync('python3', [join(REPO_ROOT, 'tools', 'organism', 'data_order.py'), ...[reuse, lag, start, first, fresh ? 1 : 0, steps].map(String)], { encoding: 'utf8' });
  if (run.error) return null;
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim().split(' ').map(Number);
}

test('data order with --fresh-start: no replay before the run\'s first chunk, every chunk three times', (t) => {
  const fresh = dataOrder(3, 37, 19280, 20000, true, 600);
  if (fresh === null) return t.skip('python3 is not installed');
  assert.deepEqual(fresh.slice(0, 37), Array.from({ length: 37 }, (_, k) => 20000 + k), 'the first 37 steps read fresh chunks');
  assert.deepEqual(fresh.slice(37, 43), [20037, 20000, 20038, 20001, 20039, 20002], 'then fresh and 37 back in turn');
  assert.deepEqual(fresh.slice(111, 114), [20074, 20037, 20000], 'then fresh, 37 and 74 back');
  const counts = new Map<number, number>();
  for (const c of fresh) counts.set(c, (counts.get(c) ?? 0) + 1);
  const newest = Math.max(...fresh);
  assert.equal(Math.min(...fresh), 20000);
  for (let c = 20000; c <= newest; c++) {
    const n = counts.get(c) ?? 0;
    assert.ok(c >= newest - 74 ? n >= 1 && n <= 3 : n === 3, `chunk ${c} read ${n} times`);
  }
  for (const reuse of [1, 2, 4]) {
    const order = dataOrder(reuse, 5, 0, 0, true, 200)!;
    const newestHere = Math.max(...order);
    for (let c = 0; c < newestHere - 5 * (reuse - 1); c++) assert.equal(order.filter((x) => x === c).length, reuse, `reuse ${reuse}: chunk ${c}`);
  }
  // without the flag: runs 1–7's order, the first chunk replayed until 74 fresh ones exist
  const clamped = dataOrder(3, 37, 19280, 20000, false, 400)!;
  assert.equal(clamped.filter((c) => c === 20000).length, 114);
  assert.deepEqual(clamped.slice(0, 6), [20000, 20000, 20000, 20001, 20000, 20000]);
});
