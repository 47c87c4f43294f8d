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

test('with a GPU: a --method without a GPU implementation is refused on cuda, left to the CPU on auto', { skip: isCudaAvailable() ? false : 'no CUDA device here' }, async () => {
  const missing = { ...base, method: 'flexprefill_full', sparsity: '0.5' };
  await assert.rejects(runOnCudaIfChosen({ ...missing, backend: 'cuda' }), /--backend cuda: flexprefill_full: no GPU implementation yet/);
  assert.equal(await runOnCudaIfChosen({ ...missing, backend: 'auto' }), false);
  await assert.rejects(runOnCudaIfChosen({ ...base, backend: 'cuda', method: 'quest', sparsity: '1.5' }), /--sparsity must be a number in \[0, 1\), got "1.5"/);
});

/**
 * generateTokensOnDevice's loop over a stand-in model that answers a scripted id per argmax (the
 * loop's host logic: stop token kept as the last id, max-new-tokens, one decode step per fed-back token,
 * caches released). The model itself is tested on the GPU in model.test.ts.
 */
test('device generation loop: stops at a stop token (kept), or after max new tokens; releases its sequence', async () => {
  const { generateTokensOnDevice } = await import('../../src/backends/cuda/generate.js');
  type Model = Parameters<typeof generateTokensOnDevice>[0];
  const make = (script: number[]) => {
    const log = { forwards: [] as number[][], released: 0, capacity: 0 };
    let next = 0;
    const buffer = { ptr: 0n, bytes: 4, capacity: 4 };
    const model = {
      config: { numLayers: 1, numHeads: 1, layerTypes: ['full'], slidingWindow: null },
      rt: { pool: { release: () => {} }, synchronize: () => {} },
      newSequence: (capacity: number) => {
        log.capacity = capacity;
        return { release: () => { log.released++; } };
      },
      prefill: () => buffer,
      forward: (_seq: unknown, tokens: number[]) => {
        log.forwards.push([...tokens]);
        return buffer;
      },
      argmaxRows: () => Int32Array.of(script[next++]),
      // One decode step (graph replay or forward + argmax in the real model): feeds `token`, answers the next id.
      decodeGreedy: (_seq: unknown, token: number) => {
        log.forwards.push([token]);
        return script[next++];
      },
    } as unknown as Model;
    return { model, log };
  };
  const a = make([5, 6, 2, 9]);
  const [stopped] = generateTokensOnDevice(a.model, [[1, 2, 3]], { maxNewTokens: 10, stopTokenIds: [2] });
  assert.deepEqual(stopped.tokenIds, [5, 6, 2]);
  assert.equal(stopped.stopReason, 'stop-token');
  assert.deepEqual(a.log.forwards, [[5], [6]]);
  assert.equal(a.log.released, 1);
  assert.equal(a.log.capacity, 13);
  // Dense counts: prompt positions 0..2 see 1 + 2 + 3 pairs; fed-back tokens at 3, 4 see 4 + 5.
  assert.equal(stopped.counts.prefill.dense[0], 6);
  assert.equal(stopped.counts.decode.dense[0], 9);

  const b = make([7, 8, 9, 10]);
  const [capped] = generateTokensOnDevice(b.model, [[4]], { maxNewTokens: 3, stopTokenIds: [2] });
  assert.deepEqual(capped.tokenIds, [7, 8, 9]);
  assert.equal(capped.stopReason, 'max-new-tokens');
  assert.deepEqual(b.log.forwards, [[7], [8]]);

  const c = make([]);
  assert.equal(generateTokensOnDevice(c.model, [[4]], { maxNewTokens: 0 })[0].tokenIds.length, 0);
  assert.throws(() => generateTokensOnDevice(c.model, [[]], { maxNewTokens: 1 }), /prompt 0 is empty/);
});
