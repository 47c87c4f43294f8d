/**
 * `sparse-frontier bench`: the CPU suite runs in its smallest setting through the command (suite
 * options passed through commander untouched), the GPU suites print their skip reason and leave the
 * exit code at 0 on a machine without a GPU, and an unknown suite is an error naming the known ones.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { ATTENTION_ARGS } from '../../bench/attention.js';
import { COLD_COMPILE_ARGS } from '../../bench/cold-compile.js';
import { CPU_BENCH_ARGS } from '../../bench/cpu.js';
import { DECODE_BREAKDOWN_ARGS } from '../../bench/decode-step-breakdown.js';
import { benchSuites } from '../../bench/main.js';
import { MODEL_BENCH_ARGS } from '../../bench/model.js';
import { SPARSE_ACTIVATIONS_ARGS } from '../../bench/sparse-activations.js';
import { SPARSE_BENCH_ARGS } from '../../bench/sparse.js';
import { isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { BENCH_SUITE_NAMES, registerBench } from '../../src/cli/commands/bench.js';
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
    for (const suite of ['attention', 'model', 'decode-step-breakdown', 'sparse', 'sparse-activations', 'cold-compile']) {
      // cold-compile's one required option: where the methods' kernel caches would go.
      const out = await bench(suite, ...(suite === 'cold-compile' ? ['--cache', mkdtempSync(join(tmpdir(), 'sf-cold-'))] : []));
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

test('the CLI names the suites bench/main.ts runs', () => {
  assert.deepEqual([...BENCH_SUITE_NAMES].sort(), Object.keys(benchSuites).sort());
});

test('bench <suite> --help prints the suite\'s own option table, not commander\'s help, and runs nothing', async () => {
  const tables = {
    cpu: CPU_BENCH_ARGS, attention: ATTENTION_ARGS, model: MODEL_BENCH_ARGS, 'decode-step-breakdown': DECODE_BREAKDOWN_ARGS,
    sparse: SPARSE_BENCH_ARGS, 'sparse-activations': SPARSE_ACTIVATIONS_ARGS, 'cold-compile': COLD_COMPILE_ARGS,
  };
  assert.deepEqual(Object.keys(tables).sort(), [...BENCH_SUITE_NAMES].sort());
  const before = process.exitCode;
  try {
    for (const [suite, args] of Object.entries(tables)) {
      assert.equal(await bench(suite, '--help'), args.usage(), `${suite} --help`);
      // -h after other options (even bad ones) still gives the usage.
      assert.equal(await bench(suite, '--lengths', 'x', '-h'), args.usage(), `${suite} --lengths x -h`);
      assert.ok(!process.exitCode, `${suite}: exit code ${process.exitCode}`);
    }
  } finally {
    process.exitCode = before;
  }
});

test('bench --help (no suite) is the command\'s help: the suites and how to reach their options', async () => {
  let written = '';
  const program = new Command().exitOverride().configureOutput({ writeOut: (s) => void (written += s), writeErr: (s) => void (written += s) });
  registerBench(program);
  for (const flag of ['--help', '-h']) {
    written = '';
    await program.parseAsync(['bench', flag], { from: 'user' });
    assert.match(written, /^Usage: .*bench <suite> \[options\.\.\.\]/);
    for (const suite of BENCH_SUITE_NAMES) assert.ok(written.includes(suite), `${flag}: ${suite} missing`);
    assert.match(written, /bench <suite> --help/);
    assert.doesNotMatch(written, /--lengths/, 'suite options come from the suites\' tables only');
  }
});

test('bench without a suite is an error listing the suites', async () => {
  await assert.rejects(bench(), (e: Error) => /which bench\?/.test(e.message) && /\bsparse-activations\b/.test(e.message));
});
