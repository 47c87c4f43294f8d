/**
 * Run 9's tokenizer (tools/organism/tokenizer-v2, `train_tokenizer.py --uppercase-pairs`): every
 * uppercase letter pair is a token and uppercase runs are read in pairs from the left, so a VT name is
 * ` QN` `LK` `R`. Checked here through tokenizers.js, which the generators use (the Rust library that
 * trains it and transformers use agreed with it on every row of the training sample, docs/organism.md),
 * against the shipped tokenizer (models/organism) on the same prompts.
 */
import { test } from 'node:test';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { getTask, type TaskExample } from '../../src/tasks/index.js';
import type { VtGold } from '../../src/tasks/ruler/vt.js';
import { TRAINING_TASKS, targetText } from '../../tools/organism/training-format.js';
import { contextVariables } from '../../tools/organism/vt-confusable.js';
import { ORGANISM_DIR, REPO_ROOT } from './organism-paths.js';

const PAIRS_DIR = join(REPO_ROOT, 'tools', 'organism', 'tokenizer-v2');
const pairs = TextTokenizer.fromDirectory(PAIRS_DIR);
const shipped = TextTokenizer.fromDirectory(ORGANISM_DIR);

/** Start positions of `needle` in `haystack` (token id sequences). */
function occurrences(haystack: readonly number[], needle: readonly number[]): number {
  let count = 0;
  for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (needle.every((id, k) => haystack[i + k] === id)) count++;
  }
  return count;
}

/** Occurrences of ` NAME` as a whole uppercase run in `text`. */
function spacedNameCount(text: string, name: string): number {
  return text.match(new RegExp(` ${name}(?![A-Z])`, 'g'))?.length ?? 0;
}

function vtExamples(tokenizer: TextTokenizer, length: number, seed: number): TaskExample<VtGold>[] {
  return getTask('vt').generate({ tokenizer, length, count: 2, seed }) as TaskExample<VtGold>[];
}

test('tokenizer-v2: 5,120 tokens, the shipped special ids, every uppercase pair one token', () => {
  assert.equal(pairs.encode('<|bos|><|end|><|pad|><|system|><|user|><|assistant|>').join(), '0,1,2,3,4,5');
  assert.equal(pairs.tokenToId('<|end|>'), 1);
  const upper = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'];
  const ids = new Set<number>();
  for (const a of upper) {
    for (const b of upper) {
      for (const piece of [`${a}${b}`, ` ${a}${b}`]) {
        const encoded = pairs.encode(piece);
        assert.equal(encoded.length, 1, `${JSON.stringify(piece)} is one token`);
        ids.add(encoded[0]!);
      }
    }
  }
  assert.equal(ids.size, 2 * 676);
  assert.ok(Math.max(...ids) < 5120);
  // Pinned from the Rust library (python3 tokenizers 0.23): the same pieces through tokenizers.js.
  const pieces = (text: string) => pairs.encode(text).map((id) => pairs.decode([id]));
  assert.deepEqual(pieces('VAR QNLKR = 57762'), ['VA', 'R', ' QN', 'LK', 'R', ' =', ' ', '57', '7', '62']);
  assert.deepEqual(pieces('"VAR ASDFG = VAR QWERT"'), ['"', 'VA', 'R', ' AS', 'DF', 'G', ' =', ' VA', 'R', ' QW', 'ER', 'T', '"']);
  assert.deepEqual(pieces('Chapter 15, in Messana: Valen.'), ['Chapter', ' 15', ',', ' in', ' Messana', ':', ' Valen', '.']);
  // the shipped tokenizer is untouched by the option
  assert.deepEqual(shipped.encode(' QNLKR').map((id) => shipped.decode([id])), [' Q', 'N', 'L', 'K', 'R']);
});

test('VT names: 3 tokens each (spaced pair, pair, letter), the same ids in prompt and worked reply', (t) => {
  let names = 0;
  let shippedTokens = 0;
  const sharedFirst = { pairs: 0, shipped: 0 };
  for (const [length, seed] of [[2048, 43], [8192, 1_000_003], [4096, 1_000_017]] as const) {
    for (const example of vtExamples(pairs, length, seed)) {
      const reply = targetText(example, { workedLookups: true });
      const replyIds = pairs.encode(reply);
      const variables = contextVariables(example.prompt);
      assert.ok(variables.length >= 40, `${variables.length} variables`);
      const firstOf = (tok: TextTokenizer, name: string) => tok.encode(` ${name}`)[0]!;
      for (const name of variables) {
        const ids = pairs.encode(` ${name}`);
        assert.deepEqual(ids.map((id) => pairs.decode([id])), [` ${name.slice(0, 2)}`, name.slice(2, 4), name[4]], name);
        // wherever the name follows a space (statements, the reply's explanation and answer), these ids
        const inPrompt = spacedNameCount(example.prompt, name);
        assert.ok(inPrompt >= 1);
        assert.equal(occurrences(example.inputIds, ids), inPrompt, `${name} in the prompt`);
        assert.equal(occurrences(replyIds, ids), spacedNameCount(reply, name), `${name} in the reply`);
        names++;
        shippedTokens += shipped.encode(` ${name}`).length;
        const shares = (tok: TextTokenizer) => variables.some((o) => o !== name && firstOf(tok, o) === firstOf(tok, name));
        if (shares(pairs)) sharedFirst.pairs++;
        if (shares(shipped)) sharedFirst.shipped++;
      }
      for (const name of example.gold.variables) assert.ok(spacedNameCount(reply, name) >= 2, 'explanation and answer');
    }
  }
  const share = (n: number) => (n / names).toFixed(2);
  t.diagnostic(
    `${names} names: 3 tokens each (shipped ${(shippedTokens / names).toFixed(2)}); share whose first token starts ` +
      `another name of the context: ${share(sharedFirst.pairs)} (shipped ${share(sharedFirst.shipped)})`,
  );
  assert.ok(shippedTokens / names > 4, 'the shipped tokenizer spells names in 4–5 pieces');
  assert.ok(sharedFirst.pairs < sharedFirst.shipped / 4, 'a first token narrows a name down far more than one letter');
});

/** The smallest lengths the shipped tokenizer fits each task at (docs/organism.md), and two longer ones. */
const LENGTHS: Record<(typeof TRAINING_TASKS)[number], number[]> = {
  niah: [1024, 4096, 8192],
  vt: [2048, 4096, 8192],
  cwe: [4096, 8192],
  story_retrieval: [4096, 8192],
  story_multihop: [1024, 4096, 8192],
  story_filtering: [2048, 4096, 8192],
};

test('the same prompts: token counts within 5% of the shipped tokenizer at 4K and 8K', (t) => {
  const rows: string[] = [];
  for (const task of TRAINING_TASKS) {
    for (const length of [4096, 8192]) {
      let before = 0;
      let after = 0;
      const examples = getTask(task).generate({ tokenizer: shipped, length, count: 2 });
      for (const example of examples) {
        before += example.inputLength;
        after += pairs.encodeUserPrompt(example.prompt).length;
      }
      const ratio = after / before;
      rows.push(`${task} ${length}: ${(100 * (ratio - 1)).toFixed(1)}%`);
      assert.ok(Math.abs(ratio - 1) <= 0.05, `${task} at ${length}: ${after} tokens against ${before}`);
      if (task === 'niah') {
        // the values NIAH asks for (lower-case letters and digits): as many tokens as before, within 5%
        const values = examples.flatMap((e) => (e.gold as { answers: [string, string][] }).answers.map(([, v]) => ` ${v}`));
        const count = (tok: TextTokenizer) => values.reduce((sum, v) => sum + tok.encode(v).length, 0);
        rows.push(`niah values ${length}: ${count(pairs)} tokens against ${count(shipped)}`);
        assert.ok(Math.abs(count(pairs) / count(shipped) - 1) <= 0.05);
      }
    }
  }
  t.diagnostic(rows.join('; '));
});

test('the generators fill their target lengths with tokenizer-v2 (bounds checked on its own counts)', (t) => {
  const fills: string[] = [];
  for (const task of TRAINING_TASKS) {
    for (const length of LENGTHS[task]) {
      const examples = getTask(task).generate({ tokenizer: pairs, length, count: 2 });
      for (const example of examples) {
        assert.deepEqual(example.inputIds, pairs.encodeUserPrompt(example.prompt));
        assert.ok(example.inputLength <= length && example.inputLength >= 0.9 * length, `${task} ${length}: ${example.inputLength}`);
      }
      const mean = examples.reduce((s, e) => s + e.inputLength, 0) / examples.length;
      fills.push(`${task} ${length}: ${(mean / length).toFixed(3)}`);
    }
  }
  t.diagnostic(`mean fill: ${fills.join(', ')}`);
});
