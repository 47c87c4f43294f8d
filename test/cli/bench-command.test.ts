/**
 * `sparse-frontier bench`: the CPU suite runs in its smallest setting through the command (suite
 * options passed through commander untouched), the GPU suites print their skip reason and leave the
 * exit code at 0 on a machine without a GPU, and an unknown suite is an error naming the known ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { runBenchCommand as bench } from '../helpers/bench-command.js';

test('bench cpu passes its options through and prints the tiny-model table', async () => {
  const out = await bench('cpu', '--quick', '--skip-matmul', '--lengths', '8,12', '--decode-steps', '2');
  assert.match(out, /measured wasm SIMD peak/);
  // The table has one row per requested length, so the options reached the suite.
  assert.match(out, /^\s+8\s+\d+/m);
  assert.match(out, /^\s+12\s+\d+/m);
  assert.doesNotMatch(out, /^\s+64\s+\d+/m, '--lengths must override --quick defaults');
  assert.doesNotMatch(out, /matmul/i, '--skip-matmul must skip the matmul table');
});

test('bench cpu rejects an option the suite does not know', async () => {
  await assert.rejects(bench('cpu', '--no-such-flag'), /bench cpu: unknown argument --no-such-flag/);
});

test('GPU suites skip with the reason and exit code 0 where no GPU is usable', { skip: isCudaAvailable() && 'a GPU is present' }, async () => {
  const before = process.exitCode;
  try {
    for (const suite of ['attention', 'model', 'sparse', 'sparse-activations']) {
      const out = await bench(suite);
      assert.match(out, new RegExp(`^${suite} benchmark skipped: no CUDA device here \\(.+\\)$`));
      assert.ok(!process.exitCode, `${suite}: exit code ${process.exitCode}`);
    }
  } finally {
    process.exitCode = before;
  }
});

test('an unknown suite is an error listing the known ones', async () => {
  await assert.rejects(bench('gpu'), (e: Error) => /unknown bench "gpu"/.test(e.message) && /\bcpu\b/.test(e.message) && /\battention\b/.test(e.message) && /\bmodel\b/.test(e.message));
});
