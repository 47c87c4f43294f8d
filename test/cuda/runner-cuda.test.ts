/**
 * The experiment runner's GPU path end to end: a tiny dense experiment (tiny llama checkpoint, the
 * echo fixture task, two examples at n = 64, three new tokens) run with backend cuda and with
 * backend cpu into separate result databases. The GPU run must record the same examples with the
 * same prompts, dense pair counts (achieved sparsity 0 in both phases) and, wherever the two
 * backends generated the same number of tokens, the same FLOPs; its prefill and decode are timed.
 * The generated ids are not compared one for one: bf16 on the GPU against float32 on the CPU may
 * flip a near-tie of a random tiny model (test/cuda/model.test.ts checks greedy ids with margins).
 * Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { type ExampleRow, ResultsDb } from '../../src/experiments/results-db.js';
import { runExperiment } from '../../src/experiments/runner.js';
import { parseExperimentSpec } from '../../src/experiments/spec.js';
import { echoGetTask } from '../experiments/echo-task.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA runner test skipped: ${skip}`);

function examplesOf(dir: string): ExampleRow[] {
  const db = ResultsDb.openDir(dir);
  try {
    return db.examples().sort((a, b) => `${a.configKey}#${a.exampleIndex}`.localeCompare(`${b.configKey}#${b.exampleIndex}`));
  } finally {
    db.close();
  }
}

describe('experiment runner on the GPU', { skip }, () => {
  const root = skip ? '' : mkdtempSync(join(tmpdir(), 'sf-runner-cuda-'));
  after(() => { if (root) rmSync(root, { recursive: true, force: true }); });

  test('a tiny dense experiment runs with backend cuda and records what the CPU run records', async () => {
    const modelDir = join(root, 'tiny');
    writeTinyCheckpoint(modelDir, 'llama', { dtype: 'BF16' });
    const spec = parseExperimentSpec({
      name: 'dense-gpu', models: [{ path: modelDir, name: 'tiny' }], tasks: ['echo'], lengths: [64], examples: 2,
      generation: { maxNewTokens: 3 }, chunkSize: 32,
    });
    const lines: string[] = [];
    const gpu = await runExperiment({ dir: join(root, 'cuda'), spec, getTask: echoGetTask, backend: 'cuda', log: (l) => lines.push(l) });
    console.log(lines.map((l) => `# ${l}`).join('\n'));
    assert.equal(gpu.backend, 'cuda');
    assert.equal(gpu.recorded, 2);
    assert.equal(gpu.interrupted, false);
    const cpu = await runExperiment({ dir: join(root, 'cpu'), spec, getTask: echoGetTask, backend: 'cpu' });
    assert.equal(cpu.backend, 'cpu');
    assert.equal(cpu.recorded, 2);

    const onGpu = examplesOf(join(root, 'cuda')), onCpu = examplesOf(join(root, 'cpu'));
    assert.equal(onGpu.length, 2);
    assert.deepEqual(onGpu.map((e) => [e.configKey, e.exampleIndex, e.inputTokens]), onCpu.map((e) => [e.configKey, e.exampleIndex, e.inputTokens]));
    for (const [i, e] of onGpu.entries()) {
      const c = onCpu[i];
      console.log(`# example ${e.exampleIndex}: GPU ${e.outputTokens} tokens, score ${e.score}, prefill ${e.prefillMs.toFixed(1)} ms, ` +
        `decode ${e.decodeMs.toFixed(1)} ms; CPU ${c.outputTokens} tokens, score ${c.score}`);
      assert.ok(e.outputTokens >= 1 && e.outputTokens <= 3, `output tokens ${e.outputTokens}`);
      assert.equal(e.prefillSparsity, 0, 'dense prefill attends every visible pair');
      // One generated token is never fed back: no decode pairs then, and no sparsity to report.
      if (e.outputTokens > 1) assert.equal(e.decodeSparsity, 0);
      assert.equal(e.flopsPrefill, c.flopsPrefill, 'prefill FLOPs depend only on the prompt');
      if (e.outputTokens === c.outputTokens) assert.equal(e.flopsTotal, c.flopsTotal);
      assert.ok(e.prefillMs > 0, 'the GPU prefill is timed');
    }
  });
});
