/**
 * The host side of Quest's graph-replayed decode steps (issue 9), without a GPU: the per-position
 * tables a captured graph reads (questGraphTables) give, at every replayed position, the budget the
 * eager step passes (questPagesFor), the current page's first row, and — through the kernel's own
 * derivation (pages = p / P, take = clamp(budget, 0, pages)) — the pages the eager step reads; the
 * graph's booked counts (questStepCounts) are the eager step's, and its fixed list rows bound every step.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type QuestSettings, questGraphTables, questStepCounts, questStepPlan } from '../../src/backends/cuda/methods/quest.js';
import { questPagesFor } from '../../src/methods/quest.js';

/** quest_select_step_at's derivation of the pages kept at p from the tabled budget (quest.cu). */
function kernelTake(p: number, pageSize: number, budget: number): number {
  const pages = Math.trunc(p / pageSize);
  return Math.max(0, Math.min(budget, pages));
}

const SETTINGS: QuestSettings[] = [
  ...[0, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99].map((sparsity) => ({ pageSize: 16, sparsity, tokenBudget: null, sharePages: true })),
  { pageSize: 16, sparsity: null, tokenBudget: 1024, sharePages: true },
  { pageSize: 16, sparsity: null, tokenBudget: 64, sharePages: false },
  { pageSize: 16, sparsity: null, tokenBudget: null, sharePages: true },
  { pageSize: 32, sparsity: 0.9, tokenBudget: null, sharePages: true },
  { pageSize: 7, sparsity: 0.75, tokenBudget: null, sharePages: false },
  { pageSize: 8, sparsity: null, tokenBudget: 40, sharePages: true },
];

/** Replayed ranges: a short prompt's first steps, across page boundaries, and a long context. */
const RANGES: Array<[number, number]> = [[1, 200], [300, 700], [16383, 17000], [131000, 131100]];

test('graph tables equal the eager step at every replayed position (budgets, tail start, pages read, counts)', () => {
  const H = 6;
  for (const settings of SETTINGS) {
    const P = settings.pageSize;
    for (const [first, capacity] of RANGES) {
      const label = `${JSON.stringify(settings)} [${first}, ${capacity})`;
      const tables = questGraphTables(first, capacity, settings);
      assert.equal(tables.budgets.length, capacity, label);
      assert.equal(tables.tailStarts.length, capacity, label);
      for (let p = 0; p < first; p++) assert.ok(tables.budgets[p] === 0 && tables.tailStarts[p] === 0, `${label}: p ${p} is not replayed`);
      let maxListRows = 0;
      for (let p = first; p < capacity; p++) {
        const eager = questStepPlan(p, settings);
        const budget = questPagesFor(p, P, settings.sparsity, settings.tokenBudget);
        assert.equal(tables.budgets[p], budget, `${label}: budget at ${p}`);
        assert.equal(tables.tailStarts[p], Math.floor(p / P) * P, `${label}: tail start at ${p}`);
        assert.equal(tables.tailStarts[p], eager.tailStart, `${label}: tail start at ${p}`);
        const take = kernelTake(p, P, tables.budgets[p]);
        assert.equal(take, eager.pagesRead, `${label}: pages kept at ${p}`);
        const tailRows = p + 1 - tables.tailStarts[p];
        assert.equal(tailRows, eager.tailRows, `${label}: tail rows at ${p}`);
        assert.ok(tailRows >= 1 && tailRows <= P, `${label}: the tail is the current page up to p (${tailRows} rows)`);
        const counts = questStepCounts(p, settings, H);
        assert.ok(counts.attended.every((x) => x === take * P + tailRows) && counts.dense.every((x) => x === p + 1), `${label}: counts at ${p}`);
        assert.ok(take * P + tailRows <= p + 1, `${label}: at most every row at ${p}`);
        maxListRows = Math.max(maxListRows, take * P);
      }
      assert.equal(tables.maxListRows, maxListRows, `${label}: the longest list of the range`);
    }
  }
});

test('budgets follow the sparsity: s = 0 keeps every page, a token budget a fixed page count once the context holds it', () => {
  const all = questGraphTables(0, 500, { pageSize: 16, sparsity: 0, tokenBudget: null, sharePages: true });
  for (let p = 0; p < 500; p++) assert.equal(all.budgets[p], Math.floor(p / 16), `p ${p}`);
  const fixed = questGraphTables(2000, 2100, { pageSize: 16, sparsity: null, tokenBudget: 256, sharePages: true });
  for (let p = 2000; p < 2100; p++) assert.equal(fixed.budgets[p], 16, `p ${p}`);
  assert.equal(fixed.maxListRows, 256);
});

test('graph tables reject an empty or negative range', () => {
  const settings: QuestSettings = { pageSize: 16, sparsity: 0.9, tokenBudget: null, sharePages: true };
  assert.throws(() => questGraphTables(10, 10, settings), /first < capacity/);
  assert.throws(() => questGraphTables(-1, 10, settings), /first < capacity/);
});
