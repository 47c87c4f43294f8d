/**
 * Host-side logic of the GPU model path that needs no device: `generate --backend` selection.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { runOnCudaIfChosen } from '../../src/backends/cuda/generate-command.js';

const base = { model: '/nonexistent', prompt: ['hi'], maxNewTokens: '1', chunkSize: '8', method: 'dense' };

test('--backend cpu keeps the CPU engine; an unknown backend is named in the error', async () => {
  assert.equal(await runOnCudaIfChosen({ ...base, backend: 'cpu' }), false);
  await assert.rejects(runOnCudaIfChosen({ ...base, backend: 'tpu' }), /--backend must be one of cpu, cuda, auto, got "tpu"/);
});

test('without a GPU: auto falls back to the CPU, cuda refuses with the reason', { skip: isCudaAvailable() ? 'a CUDA device is present' : false }, async () => {
  assert.equal(await runOnCudaIfChosen({ ...base, backend: 'auto' }), false);
  await assert.rejects(runOnCudaIfChosen({ ...base, backend: 'cuda' }), /--backend cuda: no usable CUDA device/);
});

test('with a GPU: a sparse --method is refused on the GPU path', { skip: isCudaAvailable() ? false : 'no CUDA device here' }, async () => {
  await assert.rejects(runOnCudaIfChosen({ ...base, backend: 'cuda', method: 'quest' }), /dense attention only/);
});
