import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResultsDb } from '../../src/experiments/results-db.js';

// Worker processes of one run share the results file and each record the model they load on
// start-up; a check-then-insert there once failed CI with "UNIQUE constraint failed: models.name"
// when two workers started together. This drives the same calls from several processes at once,
// many times over, so a non-atomic write shows up as a failed child.
const child = fileURLToPath(new URL('./results-db-race-child.js', import.meta.url));

function runChild(file: string, names: number, startAt: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [child, file, String(names), String(startAt)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stderr }));
  });
}

test('processes recording the same models and examples at once all succeed, and each row is stored once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sf-db-race-'));
  const file = join(dir, 'results.sqlite');
  ResultsDb.openFile(file).close();
  const names = 300;
  const startAt = Date.now() + 400;
  const results = await Promise.all([0, 1, 2, 3].map(() => runChild(file, names, startAt)));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const db = ResultsDb.openFile(file, { readonly: true });
  try {
    assert.equal(db.models().length, names);
    assert.equal(db.examples().length, names);
  } finally {
    db.close();
  }
});
