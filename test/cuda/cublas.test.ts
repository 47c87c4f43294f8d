/**
 * cuBLAS linear layer (Y = X · Wᵀ, bf16 operands, fp32 accumulation) against a float64 CPU product of
 * the same bf16-rounded inputs; bf16 and fp32 outputs, odd sizes. Skipped, with the reason printed,
 * where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import type { Cublas } from '../../src/backends/cuda/cublas.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, downloadF32, poisonedBf16, poisonedF32, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# cuBLAS tests skipped: ${skip}`);

describe('cuBLAS linear', { skip }, () => {
  let rt: CudaRuntime;
  let blas: Cublas;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    const { Cublas } = await import('../../src/backends/cuda/cublas.js');
    rt = new CudaRuntime();
    blas = new Cublas(rt.stream);
  });
  after(() => {
    blas?.dispose();
    rt?.dispose();
  });

  for (const [T, K, N, f32] of [[77, 256, 384, false], [1, 1000, 513, true], [130, 64, 96, false]] as const) {
    test(`Y[${T}, ${N}] = X[${T}, ${K}] · W[${N}, ${K}]ᵀ (${f32 ? 'fp32' : 'bf16'} out)`, () => {
      const rand = randomGenerator(T * K + N);
      const x = randomBf16Values(T * K, rand, 1), w = randomBf16Values(N * K, rand, 0.1);
      const ref = new Float32Array(T * N);
      for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += x[t * K + k] * w[n * K + k];
        ref[t * N + n] = acc;
      }
      const dx = uploadAsBf16(rt, x), dw = uploadAsBf16(rt, w);
      const dy = f32 ? poisonedF32(rt, T * N) : poisonedBf16(rt, T * N);
      blas.linear({ x: dx.ptr, w: dw.ptr, y: dy.ptr, tokens: T, inFeatures: K, outFeatures: N, outFloat32: f32 });
      const y = f32 ? downloadF32(rt, dy, T * N) : downloadBf16(rt, dy, T * N);
      for (const b of [dx, dw, dy]) rt.pool.release(b);
      assert.equal(countNaN(y), 0);
      const err = relativeError(y, ref);
      assert.ok(err < (f32 ? 1e-4 : 5e-3), `rel err ${err}`);
    });
  }
});
