import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerAnalyze } from '../../src/cli/commands/analyze.js';
import { registerReport } from '../../src/cli/commands/report.js';
import { buildSyntheticDb } from '../experiments/synthetic-db.js';

async function runCli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerAnalyze(program);
  registerReport(program);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => { out += String(chunk); return true; }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'sparse-frontier', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

test('analyze prints the tables and writes analysis.json; report writes the page and plots', async () => {
  const { dir, db } = buildSyntheticDb();
  db.close();
  const text = await runCli(['analyze', dir, '--margin-kind', 'absolute', '--margin', '0.1', '--tests']);
  assert.match(text, /Accuracy per configuration/);
  assert.match(text, /δ = 0\.1 absolute, α = 0\.05/);
  assert.match(text, /Paired tests of sparse against dense/);
  const json = JSON.parse(readFileSync(join(dir, 'analysis.json'), 'utf8'));
  assert.equal(json.preservation.options.marginKind, 'absolute');
  assert.equal(json.configurations.length, 56);
  await runCli(['report', dir, '--no-png']);
  assert.ok(existsSync(join(dir, 'report', 'report.html')));
  assert.ok(existsSync(join(dir, 'report', 'plots', 'achieved-sparsity.svg')));
  assert.ok(!existsSync(join(dir, 'report', 'plots', 'achieved-sparsity.png')), '--no-png skips PNGs');
  await assert.rejects(runCli(['analyze', dir, '--alpha', '2']), /--alpha must be in \(0, 1\)/);
  await assert.rejects(runCli(['analyze', dir, '--scaling-link', 'probit']), /--scaling-link must be logit or identity/);
  const identity = await runCli(['analyze', dir, '--scaling-link', 'identity']);
  assert.match(identity, /Scaling law: score ≈ \(ε/);
  assert.match(text, /Scaling law: score ≈ σ\(ε/);
  await assert.rejects(runCli(['analyze', join(dir, 'missing')]), /no results database/);
  rmSync(dir, { recursive: true, force: true });
});
