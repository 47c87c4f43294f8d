/**
 * model-ops.cu's gemv_bf16 (one token's linear layer without cuBLAS, CudaTransformerModel.gemvForOneToken)
 * against a float64 CPU product of the same bf16-rounded inputs, bf16 and fp32 outputs, sizes with and
 * without the four-chunk main loop's tail; and beside cuBLAS on the same operands. GPU only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Cublas } from '../../src/backends/cuda/cublas.js';
import type { ModelOpsKernels } from '../../src/backends/cuda/kernels/model-ops.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, downloadF32, poisonedBf16, poisonedF32, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { cudaSkip } from './cuda-skip.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';

const skip = cudaSkip('CUDA gemv tests');

// One bf16 rounding of the output (2^-9 relative) over fp32 sums.
const TOLERANCE = 5e-3;

describe('CUDA gemv_bf16', { skip }, () => {
  let rt: CudaRuntime;
  let ops: ModelOpsKernels;
  let blas: Cublas;
  before(async () => {
    rt = new (await import('../../src/backends/cuda/runtime.js')).CudaRuntime();
    ops = new (await import('../../src/backends/cuda/kernels/model-ops.js')).ModelOpsKernels(rt);
    blas = new (await import('../../src/backends/cuda/cublas.js')).Cublas(rt.stream);
  });
  after(() => {
    blas?.dispose();
    rt?.dispose();
  });

  for (const [K, N, f32] of [[4096, 1030, false], [14336, 67, false], [136, 1000, true], [8, 9, false], [3584, 333, true]] as const) {
    test(`y[${N}] = W[${N}, ${K}] · x[${K}] (${f32 ? 'fp32' : 'bf16'} out) against float64 and cuBLAS`, () => {
      const rand = randomGenerator(K * 7 + N);
      const x = randomBf16Values(K, rand, 1), w = randomBf16Values(N * K, rand, 0.1);
      const ref = new Float32Array(N);
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += x[k] * w[n * K + k];
        ref[n] = acc;
      }
      const dx = uploadAsBf16(rt, x), dw = uploadAsBf16(rt, w);
      const dy = f32 ? poisonedF32(rt, N) : poisonedBf16(rt, N), dyBlas = f32 ? poisonedF32(rt, N) : poisonedBf16(rt, N);
      ops.gemv({ x: dx.ptr, w: dw.ptr, y: dy.ptr, inFeatures: K, outFeatures: N, outFloat32: f32 });
      blas.linear({ x: dx.ptr, w: dw.ptr, y: dyBlas.ptr, tokens: 1, inFeatures: K, outFeatures: N, outFloat32: f32 });
      const down = (b: typeof dy) => (f32 ? downloadF32(rt, b, N) : downloadBf16(rt, b, N));
      const [y, yBlas] = [down(dy), down(dyBlas)];
      for (const b of [dx, dw, dy, dyBlas]) rt.pool.release(b);
      assert.equal(countNaN(y), 0, 'every row written');
      const err = relativeError(y, ref), errBlas = relativeError(yBlas, ref);
      console.log(`# K=${K} N=${N}: gemv rel err ${err.toExponential(2)}, cuBLAS ${errBlas.toExponential(2)}`);
      assert.ok(err < TOLERANCE, `rel err ${err}`);
    });
  }

  test('bad shapes and alignment are refused with the reason', () => {
    assert.throws(() => ops.gemv({ x: 16n, w: 16n, y: 16n, inFeatures: 12, outFeatures: 4 }), /multiple of 8/);
    assert.throws(() => ops.gemv({ x: 8n, w: 16n, y: 16n, inFeatures: 16, outFeatures: 4 }), /16-byte aligned/);
    assert.throws(() => ops.gemv({ x: 16n, w: 16n, y: 16n, inFeatures: 16, outFeatures: 0 }), /positive integer/);
  });
});
