/**
 * Backend selection for experiments (src/experiments/backend.ts) on a machine without a GPU: the
 * resolution rules with stand-in probes (GPU present or not) and stand-in GPU method lists, the
 * refusal naming the methods without a GPU implementation, auto falling back to the CPU and saying
 * why, and `run --backend` overriding the file's backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { isCudaAvailable } from '../../src/backends/cuda/availability.js';
import type { CudaProbe } from '../../src/backends/cuda/availability.js';
import { registerRun, resumeCommand } from '../../src/cli/commands/run.js';
import { chooseRunBackend, parseRunBackend, sparseMethodsOf } from '../../src/experiments/backend.js';
import { ResultsDb } from '../../src/experiments/results-db.js';
import { runExperiment } from '../../src/experiments/runner.js';
import { type ExperimentSpecInput, expandExperiment, parseExperimentSpec } from '../../src/experiments/spec.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { echoGetTask as getTask } from './echo-task.js';

const gpuHere = isCudaAvailable();

/** A probe stand-in that counts its calls. */
function probeOf(result: CudaProbe): { probe: () => Promise<CudaProbe>; calls: () => number } {
  let calls = 0;
  return { probe: async () => (calls++, result), calls: () => calls };
}
const withGpu = (): ReturnType<typeof probeOf> => probeOf({ available: true, devices: 1 });
const withoutGpu = (): ReturnType<typeof probeOf> => probeOf({ available: false, reason: 'no driver in this test' });
/** A stand-in GPU method registry holding these methods (dense always). */
const gpuHas = (...methods: string[]) => async () => ['dense', ...methods];

const base: ExperimentSpecInput = { models: ['m'], tasks: ['echo'], lengths: [64], examples: 1 };
const denseOnly = expandExperiment(parseExperimentSpec(base));
const mixed = expandExperiment(parseExperimentSpec({ ...base, methods: ['quest', 'block_sparse', 'snapkv'], sparsities: [0.5, 0.7] }));

test('sparse methods are listed once each, in grid order; dense configurations are not sparse', () => {
  assert.deepEqual(sparseMethodsOf(denseOnly), []);
  assert.deepEqual(new Set(sparseMethodsOf(mixed)), new Set(['quest', 'block_sparse', 'snapkv']));
  assert.equal(sparseMethodsOf(mixed).length, 3);
});

test('cpu never probes the GPU', async () => {
  const p = withGpu();
  assert.deepEqual(await chooseRunBackend('cpu', mixed, p.probe), { backend: 'cpu', note: null });
  assert.deepEqual(await chooseRunBackend('cpu', denseOnly, p.probe), { backend: 'cpu', note: null });
  assert.equal(p.calls(), 0);
});

test('cuda: dense-only and GPU-implemented methods run on the GPU; the others are refused by name; no GPU is an error with the reason', async () => {
  const yes = withGpu();
  assert.equal((await chooseRunBackend('cuda', denseOnly, yes.probe, gpuHas())).backend, 'cuda');
  const all = await chooseRunBackend('cuda', mixed, yes.probe, gpuHas('quest', 'block_sparse', 'snapkv'));
  assert.equal(all.backend, 'cuda');
  assert.match(all.note ?? '', /^backend cuda: CUDA \(1 device; dense and .*quest.* on the GPU model\)$/);
  const refused = withGpu();
  await assert.rejects(chooseRunBackend('cuda', mixed, refused.probe, gpuHas('block_sparse')), (e: Error) =>
    e.message.startsWith('backend: cuda cannot run this experiment: these methods have no GPU implementation yet: ') &&
    e.message.includes('quest') && e.message.includes('snapkv') && !/yet: [^(]*block_sparse/.test(e.message) &&
    e.message.includes('(methods on the GPU: dense, block_sparse)'));
  assert.equal(refused.calls(), 0, 'refused before probing');
  const no = withoutGpu();
  await assert.rejects(chooseRunBackend('cuda', denseOnly, no.probe), /^Error: backend: cuda: no usable CUDA device \(no driver in this test\)$/);
});

test('auto: the GPU when usable and every method runs there, else the CPU with the reason; methods without a GPU implementation stay on the CPU unprobed', async () => {
  const yes = withGpu();
  const onGpu = await chooseRunBackend('auto', denseOnly, yes.probe);
  assert.equal(onGpu.backend, 'cuda');
  assert.match(onGpu.note ?? '', /^backend auto: CUDA \(1 device; dense/);
  const no = withoutGpu();
  assert.deepEqual(await chooseRunBackend('auto', denseOnly, no.probe), { backend: 'cpu', note: 'backend auto: CPU (no usable CUDA device: no driver in this test)' });
  const sparse = withGpu();
  const fallback = await chooseRunBackend('auto', mixed, sparse.probe, gpuHas('quest'));
  assert.equal(fallback.backend, 'cpu');
  assert.equal(fallback.note, 'backend auto: CPU (no GPU implementation yet for block_sparse, snapkv)');
  assert.equal(sparse.calls(), 0, 'no probe when the answer is the CPU anyway');
  const all = withGpu();
  assert.equal((await chooseRunBackend('auto', mixed, all.probe, gpuHas('quest', 'block_sparse', 'snapkv'))).backend, 'cuda');
  assert.equal(all.calls(), 1);
});

test('--backend accepts cpu, cuda, auto only', () => {
  for (const b of ['cpu', 'cuda', 'auto']) assert.equal(parseRunBackend(b), b);
  assert.throws(() => parseRunBackend('tpu'), /--backend must be one of cpu, cuda, auto, got "tpu"/);
});

function tinyExperiment(extra: Partial<ExperimentSpecInput> = {}) {
  const root = mkdtempSync(join(tmpdir(), 'sf-backend-'));
  const modelDir = join(root, 'tiny');
  writeTinyCheckpoint(modelDir, 'llama');
  const input: ExperimentSpecInput = {
    name: 'dense-exp', models: [{ path: modelDir, name: 'tiny' }], backend: 'cpu', tasks: ['echo'], lengths: [64],
    examples: 2, generation: { maxNewTokens: 3 }, chunkSize: 32, ...extra,
  };
  return { root, input, spec: parseExperimentSpec(input) };
}

function outputs(dir: string): string[] {
  const db = ResultsDb.openDir(dir);
  try {
    return db.examples().map((e) => `${e.configKey}#${e.exampleIndex}: score ${e.score}, ${e.outputTokens} tokens, ${e.flopsTotal} FLOPs, sparsity ${e.prefillSparsity}/${e.decodeSparsity}`).sort();
  } finally {
    db.close();
  }
}

test('runner: cuda with a method the GPU registry lacks is refused before anything is written', async () => {
  // flexprefill_full (the full-attention-estimate variant) has no GPU implementation.
  const { root, spec } = tinyExperiment({ methods: ['flexprefill_full'], sparsities: [0.5] });
  const dir = join(root, 'refused');
  await assert.rejects(runExperiment({ dir, spec, getTask, backend: 'cuda' }), /backend: cuda cannot run this experiment: these methods have no GPU implementation yet: flexprefill_full \(methods on the GPU: dense/);
  assert.equal(existsSync(join(dir, 'results.sqlite')), false);
});

test('runner without a GPU: auto falls back to the CPU and says so (same records as cpu); cuda is an error', { skip: gpuHere && 'a GPU is present' }, async () => {
  const { root, spec } = tinyExperiment();
  const lines: string[] = [];
  const auto = await runExperiment({ dir: join(root, 'auto'), spec, getTask, backend: 'auto', log: (l) => lines.push(l) });
  assert.equal(auto.backend, 'cpu');
  assert.equal(auto.recorded, 2);
  assert.ok(lines.some((l) => l.startsWith('backend auto: CPU (no usable CUDA device: ')), lines.join('\n'));
  const cpu = await runExperiment({ dir: join(root, 'cpu'), spec, getTask });
  assert.equal(cpu.backend, 'cpu');
  assert.equal(outputs(join(root, 'auto')).length, 2);
  assert.deepEqual(outputs(join(root, 'auto')), outputs(join(root, 'cpu')));
  await assert.rejects(runExperiment({ dir: join(root, 'cuda'), spec, getTask, backend: 'cuda' }), /^Error: backend: cuda: no usable CUDA device \(.+\)$/);
});

test('run --backend overrides the file and is kept in the resume command', { skip: gpuHere && 'a GPU is present' }, async () => {
  const { root, input } = tinyExperiment({ backend: 'cuda', examples: 1 });
  const file = join(root, 'exp.json');
  writeFileSync(file, JSON.stringify(input));
  const run = async (args: string[]): Promise<string> => {
    const program = new Command().exitOverride();
    let out = '';
    registerRun(program, { getTask, out: { write: (text: string) => { out += text; } } });
    await program.parseAsync(['node', 'sparse-frontier', ...args]);
    return out;
  };
  await assert.rejects(run(['run', file, '--out', join(root, 'as-file')]), /backend: cuda: no usable CUDA device/);
  const out = await run(['run', file, '--out', join(root, 'auto'), '--backend', 'auto']);
  assert.match(out, /backend auto: CPU \(no usable CUDA device: /);
  assert.match(out, /recorded 1 example\(s\)/);
  await assert.rejects(run(['run', file, '--out', join(root, 'x'), '--backend', 'tpu']), /--backend must be one of cpu, cuda, auto, got "tpu"/);
  assert.equal(resumeCommand('e.yaml', 'out', { modelsDir: 'models', backend: 'cpu' }), 'npm start -- run e.yaml --out out --backend cpu');
});
