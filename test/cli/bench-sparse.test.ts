/**
 * `sparse-frontier bench sparse` without a GPU: its options are parsed (bad ones named) before the GPU
 * is looked for, it prints its skip reason and exits 0 where no GPU is usable, and the markdown table
 * it prints (and docs/perf.md takes) has one row per case with the ratio to (1 − s)·dense.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { runBenchCommand as bench } from '../helpers/bench-command.js';
import { DEFAULT_LENGTHS, DEFAULT_SPARSITIES, parseSparseBenchArgs, resultTables } from '../../bench/sparse.js';

test('bench sparse options: the paper grid by default; lists, phases, budget; bad values named', () => {
  const d = parseSparseBenchArgs([]);
  assert.deepEqual(d.lengths, [16384, 32768, 65536, 131072]);
  assert.deepEqual(DEFAULT_LENGTHS, d.lengths);
  assert.deepEqual(d.sparsities, [0.5, 0.8, 0.9, 0.95]);
  assert.deepEqual(DEFAULT_SPARSITIES, d.sparsities);
  assert.deepEqual(d.phases, ['prefill', 'decode']);
  const o = parseSparseBenchArgs(['--lengths', '1024,2048', '--sparsities', '0.9', '--methods', 'quest', '--phases', 'decode', '--time-budget', '60', '--out', 'x.json']);
  assert.deepEqual([o.lengths, o.sparsities, o.methods, o.phases, o.timeBudgetS, o.out], [[1024, 2048], [0.9], ['quest'], ['decode'], 60, 'x.json']);
  assert.throws(() => parseSparseBenchArgs(['--sparsities', '0.5,1']), /--sparsities: bad sparsity \(in \[0, 1\)\) "1"/);
  assert.throws(() => parseSparseBenchArgs(['--lengths', '100,abc']), /--lengths: bad length/);
  assert.throws(() => parseSparseBenchArgs(['--phases', 'both']), /--phases: "both" is not prefill or decode/);
  assert.throws(() => parseSparseBenchArgs(['--lengths']), /--lengths needs a value/);
  assert.throws(() => parseSparseBenchArgs(['--fast']), /unknown argument --fast/);
});

test('bench sparse skips with the reason and exit code 0 where no GPU is usable', { skip: isCudaAvailable() && 'a GPU is present' }, async () => {
  const before = process.exitCode;
  try {
    const out = await bench('sparse', '--lengths', '1024');
    assert.match(out, /^sparse benchmark skipped: no CUDA device here \(.+\)$/);
    assert.ok(!process.exitCode);
    await assert.rejects(bench('sparse', '--sparsities', '2'), /bad sparsity/);
  } finally {
    process.exitCode = before;
  }
});

test('the result tables: one row per case, ratios as measured', () => {
  const table = resultTables(
    [{ method: 'block_sparse', n: 16384, s: 0.9, achieved: 0.88, estimationMs: 0.5, totalMs: 3.5, attentionMs: 3, denseMs: 20, idealMs: 2, ratio: 1.5, ratioAchieved: 1.25 }],
    [{
      method: 'quest', n: 16384, s: 0.9, achieved: 0.9, estimationMs: null, hookMs: null, stepMs: 0.02, denseMs: 0.1, idealMs: 0.01, ratio: 2, ratioAchieved: 2,
      bytes: 1e6, gbps: 50, copyGbps: 2500, copyRatio: 0.02, layers: 64, attentionMs: 0.0125, attentionGbps: 80, attentionCopyRatio: 0.032,
      graphStepMs: 0.0081,
    }],
  );
  const rows = table.split('\n');
  assert.equal(rows.length, 2 + 1 + 1 + 2 + 1);
  assert.equal(rows[2], '| block_sparse | 16384 | 0.9 | 0.880 | 0.50 | 3.00 | 20.00 | 1.50 | 1.25 |');
  assert.equal(rows[6], '| quest | 16384 | 0.9 | 0.900 | - | 20.0 | 100.0 | 2.00 | 50 | 2500 | 2 | 12.5 | 3 | 8.1 |');
});
