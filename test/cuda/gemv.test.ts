/**
 * model-ops.cu's gemv_bf16 (one token's linear layer without cuBLAS, CudaTransformerModel.gemvForOneToken)
 * against a float64 CPU product of the same bf16-rounded inputs, bf16 and fp32 outputs, sizes with and
 * without the four-chunk main loop's tail; and beside cuBLAS on the same operands. gemv_fused_bf16 (the
 * norm prologue, residual and gated epilogues, fp32 out, a programmatic launch) against the separate
 * kernels it replaces, bit for bit. GPU only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Cublas } from '../../src/backends/cuda/cublas.js';
import type { ModelOpsKernels } from '../../src/backends/cuda/kernels/model-ops.js';
import type { DeviceBuffer } from '../../src/backends/cuda/memory-pool.js';
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

  for (const [K, N, f32] of [[4096, 1030, false], [14336, 67, false], [136, 1000, true], [8, 9, false], [3584, 333, true], [2056, 40, false]] as const) {
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
      const dyDeep = f32 ? poisonedF32(rt, N) : poisonedBf16(rt, N);
      ops.gemv({ x: dx.ptr, w: dw.ptr, y: dy.ptr, inFeatures: K, outFeatures: N, outFloat32: f32 });
      ops.gemv({ x: dx.ptr, w: dw.ptr, y: dyDeep.ptr, inFeatures: K, outFeatures: N, outFloat32: f32, deep: true });
      blas.linear({ x: dx.ptr, w: dw.ptr, y: dyBlas.ptr, tokens: 1, inFeatures: K, outFeatures: N, outFloat32: f32 });
      const down = (b: typeof dy) => (f32 ? downloadF32(rt, b, N) : downloadBf16(rt, b, N));
      const [y, yBlas, yDeep] = [down(dy), down(dyBlas), down(dyDeep)];
      for (const b of [dx, dw, dy, dyBlas, dyDeep]) rt.pool.release(b);
      // Twice the loads in flight, the same chunks summed in the same order: the same bits.
      assert.equal(yDeep.findIndex((v, i) => !Object.is(v, y[i])), -1, 'gemv_bf16_deep against gemv_bf16');
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

  /** Raw bits of a device bf16 buffer (bitwise comparisons). */
  const bits = (b: { ptr: bigint }, n: number): Uint16Array => {
    rt.synchronize();
    const out = new Uint16Array(n);
    rt.cuda.download(out, b.ptr);
    return out;
  };
  const sameBits = (a: Uint16Array | Float32Array, b: Uint16Array | Float32Array, what: string) => {
    const i = a.findIndex((v, j) => !Object.is(v, b[j]));
    assert.equal(i, -1, `${what}: first difference at ${i}`);
  };

  // K = 6144: gemv_fused's norm takes its loop form (more than 16 values a thread), rmsnorm its register
  // form (up to 32): equal bits check that both forms sum in the same order.
  for (const [K, rows, offset] of [[4096, 1100, 0], [3584, 700, 1], [136, 90, 0], [6144, 300, 0]] as const) {
    test(`gemv_fused K=${K}: norm prologue, residual and gated epilogues, fp32 LM head: the same bits as the separate kernels`, async () => {
      const { ElementwiseKernels } = await import('../../src/backends/cuda/kernels/elementwise.js');
      const ew = new ElementwiseKernels(rt);
      const rand = randomGenerator(K + rows);
      const eps = 1e-5;
      const x = uploadAsBf16(rt, randomBf16Values(K, rand, 3)), nw = uploadAsBf16(rt, randomBf16Values(K, rand, 1));
      const w = uploadAsBf16(rt, randomBf16Values(2 * rows * K, rand, 0.1));
      const held: DeviceBuffer[] = [x, nw, w];
      const take = (b: DeviceBuffer): DeviceBuffer => (held.push(b), b);
      try {
        // Norm prologue, bf16 out: rmsNorm then gemv.
        const h = take(poisonedBf16(rt, K)), ref = take(poisonedBf16(rt, rows)), got = take(poisonedBf16(rt, rows));
        ew.rmsNorm({ x: x.ptr, weight: nw.ptr, out: h.ptr, rows: 1, cols: K, eps, weightOffset: offset });
        ops.gemv({ x: h.ptr, w: w.ptr, y: ref.ptr, inFeatures: K, outFeatures: rows });
        ops.gemvFused({ w: w.ptr, x: x.ptr, y: got.ptr, inFeatures: K, norm: { weight: nw.ptr, eps, weightOffset: offset }, out: { kind: 'plain', rows } });
        sameBits(bits(got, rows), bits(ref, rows), 'norm + plain');
        // Norm prologue, fp32 out (the LM head).
        const ref32 = take(poisonedF32(rt, rows)), got32 = take(poisonedF32(rt, rows));
        ops.gemv({ x: h.ptr, w: w.ptr, y: ref32.ptr, inFeatures: K, outFeatures: rows, outFloat32: true });
        ops.gemvFused({ w: w.ptr, x: x.ptr, y: got32.ptr, inFeatures: K, norm: { weight: nw.ptr, eps, weightOffset: offset }, out: { kind: 'plain', rows, outFloat32: true } });
        sameBits(downloadF32(rt, got32, rows), downloadF32(rt, ref32, rows), 'norm + fp32');
        // Residual epilogue: gemv then add into a residual stream of `rows`.
        const residual = randomBf16Values(rows, rand, 2);
        const resRef = take(uploadAsBf16(rt, residual)), resGot = take(uploadAsBf16(rt, residual)), proj = take(poisonedBf16(rt, rows));
        ops.gemv({ x: x.ptr, w: w.ptr, y: proj.ptr, inFeatures: K, outFeatures: rows });
        ew.add({ a: resRef.ptr, b: proj.ptr, out: resRef.ptr, n: rows });
        ops.gemvFused({ w: w.ptr, x: x.ptr, y: resGot.ptr, inFeatures: K, out: { kind: 'residual', rows } });
        sameBits(bits(resGot, rows), bits(resRef, rows), 'residual');
        // Gated epilogue over fused gate|up rows [2·rows, K], with the norm prologue, both activations.
        for (const activation of ['silu', 'gelu_tanh'] as const) {
          const gu = take(poisonedBf16(rt, 2 * rows)), actRef = take(poisonedBf16(rt, rows)), actGot = take(poisonedBf16(rt, rows));
          ops.gemv({ x: h.ptr, w: w.ptr, y: gu.ptr, inFeatures: K, outFeatures: 2 * rows });
          ops.gatedActivation({ gateUp: gu.ptr, out: actRef.ptr, rows: 1, inner: rows, activation });
          ops.gemvFused({ w: w.ptr, x: x.ptr, y: actGot.ptr, inFeatures: K, norm: { weight: nw.ptr, eps, weightOffset: offset }, out: { kind: 'gated', inner: rows, activation } });
          const got16 = bits(actGot, rows);
          assert.ok(!downloadBf16(rt, actGot, rows).some(Number.isNaN), `${activation}: every output written`);
          sameBits(got16, bits(actRef, rows), `gated ${activation}`);
        }
        // Eight chunks a lane per batch (deep), gated and not: the same bits.
        const gotDeep = take(poisonedBf16(rt, rows)), actDeep = take(poisonedBf16(rt, rows)), actPlain = take(poisonedBf16(rt, rows));
        ops.gemvFused({ w: w.ptr, x: x.ptr, y: gotDeep.ptr, inFeatures: K, norm: { weight: nw.ptr, eps, weightOffset: offset }, out: { kind: 'plain', rows }, deep: true });
        sameBits(bits(gotDeep, rows), bits(ref, rows), 'deep plain');
        for (const [buf, deep] of [[actPlain, false], [actDeep, true]] as const) {
          ops.gemvFused({ w: w.ptr, x: x.ptr, y: buf.ptr, inFeatures: K, norm: { weight: nw.ptr, eps, weightOffset: offset }, out: { kind: 'gated', inner: rows, activation: 'silu' }, deep });
        }
        sameBits(bits(actDeep, rows), bits(actPlain, rows), 'deep gated');
        // Launched as a programmatic dependent that releases its own dependents: the same bits.
        const gotP = take(poisonedBf16(rt, rows));
        ops.gemvFused({ w: w.ptr, x: x.ptr, y: gotP.ptr, inFeatures: K, norm: { weight: nw.ptr, eps, weightOffset: offset }, out: { kind: 'plain', rows }, release: true, programmatic: true });
        sameBits(bits(gotP, rows), bits(ref, rows), 'programmatic');
      } finally {
        rt.synchronize();
        for (const b of held) rt.pool.release(b);
      }
    });
  }
});
