import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { timeGraphOnDevice, timeOnDevice } from '../../src/backends/cuda/timing.js';

// The counts are checked before the runtime is touched, so a bare object stands in for it here.
const noDevice = {} as CudaRuntime;

test('timeOnDevice refuses a fractional or non-positive repeat count before launching anything', () => {
  let launched = 0;
  const body = () => { launched++; };
  assert.throws(() => timeOnDevice(noDevice, body, { repeats: 7.5 }), /repeats must be an integer >= 1, got 7.5/);
  assert.throws(() => timeOnDevice(noDevice, body, { repeats: 0 }), /repeats must be an integer >= 1, got 0/);
  assert.throws(() => timeOnDevice(noDevice, body, { warmup: 1.5 }), /warmup must be an integer >= 0, got 1.5/);
  assert.throws(() => timeGraphOnDevice(noDevice, body, { perGraph: 2.5 }), /perGraph must be an integer >= 1, got 2.5/);
  assert.equal(launched, 0);
});
