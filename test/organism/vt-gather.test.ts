/**
 * Run 12's VT gather supervision (train.py --vt-gather-weight): tools/organism/vt_statements.py finds
 * each VT statement in the organism's tokens and names, for every position from its `Ġ=` to its last
 * token, the statement's LHS name tokens as targets. The statements it finds must be exactly the
 * context's (as vt-confusable.ts reads them from the text), in the prompt's own token ids, for names as
 * generated and renamed confusable, at 2K and 8K; the reply's `VAR NAME,` and the intro's quoted
 * examples are no statements.
 */
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { getTask, type TaskExample } from '../../src/tasks/index.js';
import type { VtGold } from '../../src/tasks/ruler/vt.js';
import { replyParts, TRAINING_SEED_BASE } from '../../tools/organism/training-format.js';
import { contextStatements, renameDraw, withConfusableNames } from '../../tools/organism/vt-confusable.js';
import { ORGANISM_DIR, REPO_ROOT } from './organism-paths.js';

const tokenizer = TextTokenizer.fromDirectory(ORGANISM_DIR);

interface FoundStatement {
  lhs: [number, number];
  eq: number;
  rhs: [number, number];
  rhs_kind: 'var' | 'value';
}
interface GatherRow {
  statements: FoundStatement[];
  positions: number[];
  targets: number[][];
  reply_positions: number[];
  reply_targets: number[][];
}

/** vt_statements.py's statements and gather targets for each row, or null where python3 is missing. */
function pythonGather(rows: { ids: number[]; prompt_tokens: number }[]): GatherRow[] | null {
  const run = spawnSync('python3', [join(REPO_ROOT, 'tools', 'organism', 'vt_statements.py'), join(ORGANISM_DIR, 'tokenizer.json')],
    { input: JSON.stringify(rows), encoding: 'utf8', maxBuffer: 1 << 28 });
  if (run.error) return null;
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as GatherRow[];
}

function examples(): TaskExample<VtGold>[] {
  const out: TaskExample<VtGold>[] = [];
  for (const [length, seed] of [[2048, TRAINING_SEED_BASE + 11], [8192, TRAINING_SEED_BASE + 12]] as const) {
    const [generated] = getTask('vt').generate({ tokenizer, length, count: 1, seed });
    const uniform = generated as TaskExample<VtGold>;
    out.push(uniform);
    const renamed = withConfusableNames(uniform, tokenizer, renameDraw(uniform.seed, uniform.index, 1)!);
    assert.ok(renamed, 'the renamed instance fits its length');
    out.push(renamed.example);
  }
  return out;
}

test('vt_statements.py finds exactly the context statements, with LHS targets from = to the statement end', (t) => {
  const cases = examples();
  // the prompt followed by its worked reply: the reply's "VAR NAME," must not count
  const rows = cases.map((e) => {
    const { head, answer } = replyParts(e, { workedLookups: true });
    return { ids: [...e.inputIds, ...tokenizer.encode(head + answer)], prompt_tokens: e.inputLength };
  });
  const found = pythonGather([...rows, ...rows.map((r) => ({ ...r, prompt_tokens: r.ids.length }))]);
  if (found === null) return t.skip('python3 is not installed');
  cases.forEach((example, i) => {
    const row = rows[i]!;
    const got = found[i]!;
    const decode = (a: number, b: number): string => tokenizer.decode(row.ids.slice(a, b), { skipSpecialTokens: false });
    const expected = contextStatements(example.prompt).map((s) => `${s.target}=${s.source ?? s.value}`);
    assert.equal(expected.length, 40, 'a default VT context holds 8 chains of 5 statements');
    assert.deepEqual(got.statements.map((s) => `${decode(...s.lhs).trim()}=${decode(...s.rhs).trim()}`), expected);
    for (const s of got.statements) {
      assert.ok(s.lhs[1] === s.eq && s.eq < s.rhs[0] && s.rhs[1] <= row.prompt_tokens, 'LHS, =, RHS in order, inside the prompt');
      assert.equal(decode(s.eq, s.eq + 1), ' =');
      assert.equal(s.rhs_kind, /^\d+$/.test(decode(...s.rhs).trim()) ? 'value' : 'var');
    }
    // targets: each statement's positions = … last token, all naming its LHS tokens (padded with -100)
    let k = 0;
    for (const s of got.statements) {
      const lhs = row.ids.slice(...s.lhs);
      for (let p = s.eq; p < s.rhs[1]; p++, k++) {
        assert.equal(got.positions[k], p);
        assert.deepEqual(got.targets[k], [...lhs, ...Array<number>(5 - lhs.length).fill(-100)]);
      }
    }
    assert.equal(got.positions.length, k);
    // the whole sequence read as prompt: the reply adds no statement
    assert.deepEqual(found[cases.length + i]!.statements, got.statements);
    // reply side: the explanation's and the answer's names, in order; each name's targets sit at the
    // positions that predict its tokens (the one before its first token to its second-to-last)
    const names: string[] = [];
    let at = 0;
    while (at < got.reply_positions.length) {
      const target = got.reply_targets[at]!.filter((id) => id !== -100);
      const first = got.reply_positions[at]! + 1;
      assert.deepEqual(row.ids.slice(first, first + target.length), target, 'the targets are the tokens that follow');
      for (let j = 0; j < target.length; j++) {
        assert.equal(got.reply_positions[at + j], first - 1 + j);
        assert.deepEqual(got.reply_targets[at + j], got.reply_targets[at]);
      }
      names.push(tokenizer.decode(target, { skipSpecialTokens: false }));
      at += target.length;
    }
    assert.deepEqual(names, [...example.gold.variables, ...example.gold.variables].map((v) => ` ${v}`));
    assert.ok(got.reply_positions.every((q) => q >= row.prompt_tokens - 1), 'reply side reads the reply only');
  });
});

test('vt_statements.py refuses a tokenizer without the organism\'s VAR and = tokens', (t) => {
  const run = spawnSync('python3', ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); from vt_statements import TokenKinds; TokenKinds(["a", "b"])',
    join(REPO_ROOT, 'tools', 'organism')], { encoding: 'utf8' });
  if (run.error) return t.skip('python3 is not installed');
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /no single 'ĠVAR' and 'Ġ=' token/);
});
