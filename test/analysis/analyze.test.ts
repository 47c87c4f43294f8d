import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analysisToJson, analyzeDirectory } from '../../src/analysis/analyze.js';
import { allTables, renderTable } from '../../src/analysis/tables.js';
import { buildSyntheticDb } from '../experiments/synthetic-db.js';

test('end to end on a planted results database', () => {
  const { dir, db } = buildSyntheticDb();
  db.close();
  const a = analyzeDirectory(dir);
  // 2 models × 2 tasks × 2 lengths × (dense + 2 methods × 3 sparsities)
  assert.equal(a.configurations.length, 8 * 7);
  const squadDense = a.configurations.find((c) => c.task === 'qa_squad' && c.phase === 'dense')!;
  assert.equal(squadDense.summary.dropped, 1);
  assert.equal(squadDense.summary.n, 23);
  // Achieved sparsity equals the planted fraction of pairs.
  for (const c of a.configurations) {
    if (c.phase !== 'dense') assert.ok(Math.abs(c.achieved! - c.requestedSparsity!) < 1e-12);
  }
  // s = 0.5 changes no output: preserved everywhere; the largest s is never below it.
  const at05 = a.preservation.tests.filter((t) => t.sparsity === 0.5);
  assert.ok(at05.length === 16 && at05.every((t) => t.preserved));
  assert.ok(a.preservation.largest.every((l) => l.largestPreservedSparsity !== null && l.largestPreservedSparsity >= 0.5));
  // Prefill degrades twice as fast: at s = 0.95 it must fail at least as often as decode.
  const fails = (phase: string) => a.preservation.tests.filter((t) => t.sparsity === 0.95 && t.phase === phase && !t.preserved).length;
  assert.ok(fails('prefill') >= fails('decode'));
  assert.ok(fails('prefill') > 0);
  // IsoFLOPS: per length and phase, with both dense models in each group.
  assert.equal(a.isoflops.length, 4);
  for (const g of a.isoflops) {
    assert.equal(g.points.filter((p) => p.phase === 'dense').length, 2);
    assert.ok(g.frontier.length >= 1);
    for (let i = 1; i < g.frontier.length; i++) assert.ok(g.frontier[i].flops >= g.frontier[i - 1].flops && g.frontier[i].accuracy > g.frontier[i - 1].accuracy);
  }
  // Scaling law fits for both methods; compression lowers accuracy.
  const quest = a.scalingLaws.find((f) => f.method === 'quest')!;
  assert.equal(quest.skipped, null);
  assert.ok(quest.coefficients['ln k']! < 0);
  assert.ok(quest.r2! > 0 && quest.r2! <= 1);
  const json = analysisToJson(a) as { configurations: { scores: Record<string, number | null> }[] };
  assert.equal(Object.keys(json.configurations[0].scores).length, 24);
  const text = allTables(a).map(renderTable).join('\n\n');
  assert.match(text, /Largest sparsity preserving accuracy/);
  assert.match(text, /larger sparse|smaller dense|no larger sparse/);
});

test('a directory without results is a clear error', () => {
  assert.throws(() => analyzeDirectory('/nonexistent-dir'), /no results database in \/nonexistent-dir/);
});
