import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerRun } from '../../src/cli/commands/run.js';
import { listMethods } from '../../src/methods/index.js';
import { buildSyntheticDb } from './synthetic-db.js';

async function runCli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerRun(program);
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

test('run --dry-run lists the quick grid; --merge folds a shard file in', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sf-runcli-'));
  const listing = await runCli(['run', 'quick', '--out', join(root, 'q'), '--dry-run', '--models-dir', join(root, 'none')]);
  const perCell = 1 + 2 * listMethods().filter((m) => m.id !== 'dense').length;
  assert.match(listing, new RegExp(`${2 * 3 * perCell} configurations × 3 examples`));
  assert.match(listing, /model=organism\|task=niah\|n=1024\|phase=dense\|method=dense\|s=0/);
  const { dir, db } = buildSyntheticDb(join(root, 'shard'));
  const total = db.examples().length;
  db.close();
  const merged = await runCli(['run', 'quick', '--out', join(root, 'merged'), '--merge', join(dir, 'results.sqlite')]);
  assert.match(merged, new RegExp(`merged ${total} example\\(s\\)`));
  await assert.rejects(runCli(['run', 'nothing-like-this', '--out', join(root, 'x')]), /neither a preset \(quick, paper\) nor a file/);
  await assert.rejects(runCli(['run', 'quick', '--out', join(root, 'x'), '--shard', '3/2']), /1 <= i <= n/);
});
