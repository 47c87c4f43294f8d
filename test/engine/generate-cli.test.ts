import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerGenerate } from '../../src/cli/commands/generate.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { TransformerModel } from '../../src/engine/model.js';
import { generateText } from '../../src/engine/generate.js';

const dir = mkdtempSync(join(tmpdir(), 'sf-generate-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
writeTinyCheckpoint(dir, 'qwen3');

async function runCli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerGenerate(program);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'sf', 'generate', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

test('generate CLI prints the completion (chat template by default) and tokens/s', async () => {
  const out = await runCli(['--model', dir, '--prompt', 'hello there', '--max-new-tokens', '5', '--chunk-size', '3']);
  const ckpt = loadCheckpoint(dir);
  const [expected] = generateText(new TransformerModel(ckpt.config, ckpt.weights), ckpt.tokenizer, ['hello there'], {
    maxNewTokens: 5, stopTokenIds: ckpt.stopTokenIds,
  });
  assert.ok(out.includes(`${expected.text}\n[prompt ${expected.promptTokens} tokens`), out);
  assert.match(out, /prefill [\d.]+ tok\/s/);
  assert.match(out, /decode ([\d.]+|-) tok\/s/);
  assert.ok(expected.promptTokens > ckpt.tokenizer.encode('hello there').length, 'chat template applied');
});

test('generate CLI: --no-chat feeds the raw prompt; bad numbers are named', async () => {
  const raw = await runCli(['--model', dir, '--prompt', 'hello there', '--no-chat', '--max-new-tokens', '2']);
  const ckpt = loadCheckpoint(dir);
  const rawTokens = ckpt.tokenizer.encode('hello there', { addSpecialTokens: true }).length;
  assert.match(raw, new RegExp(`\\[prompt ${rawTokens} tokens`));
  await assert.rejects(runCli(['--model', dir, '--prompt', 'x', '--max-new-tokens', 'many']), /--max-new-tokens must be a non-negative integer/);
  await assert.rejects(runCli(['--model', dir, '--prompt', 'x', '--chunk-size', '0']), /--chunk-size must be a positive integer/);
});
