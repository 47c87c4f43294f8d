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

test('generate CLI: --method runs a sparse method from the registry and reports its achieved sparsity', async () => {
  const prompt = 'the value for key abc is 42. '.repeat(12);
  const out = await runCli(['--model', dir, '--prompt', prompt, '--max-new-tokens', '3', '--method', 'snapkv', '--sparsity', '0.5']);
  assert.match(out, /attention: prefill dense, decode snapkv/);
  const m = /decode (\d\.\d+)\]/.exec(out);
  assert.ok(m && Number(m[1]) > 0.3, `decode sparsity reported: ${out}`);
  await assert.rejects(runCli(['--model', dir, '--prompt', 'x', '--sparsity', '1.5', '--method', 'quest']), /--sparsity must be a number in \[0, 1\)/);
  await assert.rejects(runCli(['--model', dir, '--prompt', 'x', '--method', 'nope']), /unknown attention method "nope"/);
});
