/**
 * GPU correctness of the elementwise kernels (RMSNorm, RoPE, SwiGLU, add, argmax) against float64
 * CPU references on the same bf16-rounded inputs; outputs poisoned with NaN before each launch.
 * Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { F32_NAN_BITS } from '../../src/backends/cuda/bf16.js';
import type { ElementwiseKernels } from '../../src/backends/cuda/kernels/elementwise.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA elementwise tests skipped: ${skip}`);

// One bf16 rounding of the output: relative error about 2^-9.
const TOLERANCE = 5e-3;

describe('CUDA elementwise kernels', { skip }, () => {
  let rt: CudaRuntime;
  let ew: ElementwiseKernels;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    const { ElementwiseKernels } = await import('../../src/backends/cuda/kernels/elementwise.js');
    rt = new CudaRuntime();
    ew = new ElementwiseKernels(rt);
  });
  after(() => rt?.dispose());

  for (const [rows, cols, offset] of [[7, 4096, 0], [3, 1000, 1]] as const) {
    test(`rmsnorm ${rows}x${cols} weightOffset=${offset}`, () => {
      const rand = randomGenerator(rows * cols);
      const x = randomBf16Values(rows * cols, rand, 3);
      const w = randomBf16Values(cols, rand, 1);
      const eps = 1e-6;
      const ref = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        let ss = 0;
        for (let c = 0; c < cols; c++) ss += x[r * cols + c] ** 2;
        const inv = 1 / Math.sqrt(ss / cols + eps);
        for (let c = 0; c < cols; c++) ref[r * cols + c] = x[r * cols + c] * inv * (w[c] + offset);
      }
      const dx = uploadAsBf16(rt, x), dw = uploadAsBf16(rt, w), dout = poisonedBf16(rt, rows * cols);
      ew.rmsNorm({ x: dx.ptr, weight: dw.ptr, out: dout.ptr, rows, cols, eps, weightOffset: offset });
      const out = downloadBf16(rt, dout, rows * cols);
      for (const b of [dx, dw, dout]) rt.pool.release(b);
      assert.equal(countNaN(out), 0);
      assert.ok(relativeError(out, ref) < TOLERANCE, `rel err ${relativeError(out, ref)}`);
    });
  }

  test('rope rotate-half at positions up to 5000', () => {
    const T = 37, heads = 5, D = 128, base = 500000;
    const rand = randomGenerator(99);
    const x = randomBf16Values(T * heads * D, rand, 2);
    const positions = Int32Array.from({ length: T }, (_, t) => (t * 137) % 5000);
    const invFreq = Float32Array.from({ length: D / 2 }, (_, i) => 1 / base ** ((2 * i) / D));
    const ref = new Float32Array(x.length);
    for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * D;
      for (let i = 0; i < D / 2; i++) {
        const angle = Math.fround(positions[t] * invFreq[i]); // fp32 angle, as HF and the kernel
        const c = Math.cos(angle), s = Math.sin(angle);
        ref[o + i] = x[o + i] * c - x[o + i + D / 2] * s;
        ref[o + i + D / 2] = x[o + i + D / 2] * c + x[o + i] * s;
      }
    }
    const dx = uploadAsBf16(rt, x);
    const dpos = rt.pool.acquire(positions.byteLength);
    rt.cuda.upload(dpos.ptr, positions);
    const dfreq = rt.pool.acquire(invFreq.byteLength);
    rt.cuda.upload(dfreq.ptr, invFreq);
    ew.ropeRotateHalf({ x: dx.ptr, positions: dpos.ptr, invFreq: dfreq.ptr, tokens: T, heads, headDim: D });
    const out = downloadBf16(rt, dx, x.length);
    for (const b of [dx, dpos, dfreq]) rt.pool.release(b);
    assert.equal(countNaN(out), 0);
    assert.ok(relativeError(out, ref) < TOLERANCE, `rel err ${relativeError(out, ref)}`);
  });

  test('swiglu and add over an odd length', () => {
    const n = 10_001;
    const rand = randomGenerator(5);
    const gate = randomBf16Values(n, rand, 6), up = randomBf16Values(n, rand, 2);
    const refSwiglu = new Float32Array(n), refAdd = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      refSwiglu[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
      refAdd[i] = gate[i] + up[i];
    }
    const dg = uploadAsBf16(rt, gate), du = uploadAsBf16(rt, up);
    const ds = poisonedBf16(rt, n), da = poisonedBf16(rt, n);
    ew.swiglu({ gate: dg.ptr, up: du.ptr, out: ds.ptr, n });
    ew.add({ a: dg.ptr, b: du.ptr, out: da.ptr, n });
    const s = downloadBf16(rt, ds, n), a = downloadBf16(rt, da, n);
    for (const b of [dg, du, ds, da]) rt.pool.release(b);
    assert.equal(countNaN(s) + countNaN(a), 0);
    assert.ok(relativeError(s, refSwiglu) < TOLERANCE, `swiglu rel err ${relativeError(s, refSwiglu)}`);
    assert.ok(relativeError(a, refAdd) < TOLERANCE, `add rel err ${relativeError(a, refAdd)}`);
  });

  test('argmax per row, lowest index on ties', () => {
    const rows = 4, V = 151_936;
    const rand = randomGenerator(8);
    const logits = new Float32Array(rows * V);
    for (let i = 0; i < logits.length; i++) logits[i] = rand() * 10;
    const expected = [1234, 151_935, 0, 77_777];
    for (let r = 0; r < rows; r++) logits[r * V + expected[r]] = 50;
    logits[3 * V + 99_999] = 50; // tie in row 3: the lower index 77_777 wins
    const dl = rt.pool.acquire(logits.byteLength);
    rt.cuda.upload(dl.ptr, logits);
    const dout = rt.pool.acquire(rows * 4);
    rt.cuda.fill32Async(dout.ptr, F32_NAN_BITS, rows, rt.stream);
    ew.argmaxRows({ logits: dl.ptr, out: dout.ptr, rows, vocab: V });
    rt.synchronize();
    const got = new Int32Array(rows);
    rt.cuda.download(got, dout.ptr);
    rt.pool.release(dl);
    rt.pool.release(dout);
    assert.deepEqual([...got], expected);
  });
});
