import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type PreservationTest, largestPreservedSparsity } from '../../src/analysis/preservation.js';
import { pairedNonInferiorityTest } from '../../src/analysis/stats.js';
import { preservationByPhaseTable, preservationTable, preservedSparsityBought, renderTable } from '../../src/analysis/tables.js';
import type { Analysis } from '../../src/analysis/analyze.js';
import { achievedOrRequested } from '../../src/analysis/aggregate.js';

/** A test of `method` at requested `s` that achieved `achieved`, passing or not. */
function planted(method: string, s: number, achieved: number | null, preserved: boolean): PreservationTest {
  const sparse = preserved ? [1, 1, 1, 1] : [0, 0, 1, 0];
  return {
    configKey: `m|t|1024|prefill|${method}|${s}`, model: 'm', task: 't', length: 1024, phase: 'prefill', method,
    sparsity: s, achievedSparsity: achieved, denseMean: 1, sparseMean: sparse.reduce((a, b) => a + b) / 4,
    test: pairedNonInferiorityTest(sparse, [1, 1, 1, 1], 0.05), preserved,
  };
}

test('a method that falls short of its target is credited with the sparsity it achieved', () => {
  const tests = [
    // FlexPrefill-like: every target passes, but the achieved sparsity stops at 0.37.
    planted('flex', 0.5, 0.37, true), planted('flex', 0.9, 0.37, true), planted('flex', 0.95, 0.37, true),
    // A method that reaches its targets and passes up to 0.8.
    planted('exact', 0.5, 0.5, true), planted('exact', 0.8, 0.8, true), planted('exact', 0.9, 0.9, false),
    // Nothing passes.
    planted('none', 0.5, 0.5, false),
    // Achieved sparsity not measured: the requested one stands.
    planted('unmeasured', 0.8, null, true),
  ];
  const largest = new Map(largestPreservedSparsity(tests).map((l) => [l.method, l]));
  assert.equal(largest.get('flex')!.largestPreservedSparsity, 0.95);
  assert.equal(largest.get('flex')!.achievedAtLargest, 0.37);
  assert.equal(preservedSparsityBought(largest.get('flex')!), 0.37);
  assert.equal(preservedSparsityBought(largest.get('exact')!), 0.8);
  assert.equal(largest.get('none')!.largestPreservedSparsity, null);
  assert.equal(preservedSparsityBought(largest.get('none')!), null);
  assert.equal(preservedSparsityBought(largest.get('unmeasured')!), 0.8);

  const analysis = { preservation: { options: { alpha: 0.05, margin: 0.05, marginKind: 'relative' }, tests, largest: [...largest.values()] } } as unknown as Analysis;
  const text = renderTable(preservationTable(analysis));
  // k from the achieved 0.37 (1.6), not the requested 0.95 (20).
  assert.match(text, /flex \(prefill\)\s+0\.950\s+0\.370\s+1\.6\s/);
  assert.match(text, /exact \(prefill\)\s+0\.800\s+0\.800\s+5\.0\s/);
  const byPhase = renderTable(preservationByPhaseTable(analysis));
  // mean of 0.37, 0.8, 0 and 0.8 over the four cells
  assert.match(byPhase, new RegExp(`m\\s+prefill\\s+4\\s+3\\s+${((0.37 + 0.8 + 0 + 0.8) / 4).toFixed(3)}\\s+0\\.800`));
});

test('plots and fits place a configuration at the sparsity it achieved', () => {
  assert.equal(achievedOrRequested({ phase: 'prefill', achieved: 0.37, sparsity: 0.95 }), 0.37);
  assert.equal(achievedOrRequested({ phase: 'decode', achieved: null, sparsity: 0.8 }), 0.8);
  assert.equal(achievedOrRequested({ phase: 'dense', achieved: 0, sparsity: 0 }), 0);
});
