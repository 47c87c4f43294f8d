/**
 * GPU correctness of the whole-model kernels (model-ops.cu, small-head-attention.cu) against float64
 * CPU references on the same bf16-rounded inputs; outputs (and the untouched parts of strided rows)
 * poisoned with NaN first. Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import type { ModelOpsKernels } from '../../src/backends/cuda/kernels/model-ops.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, downloadF32, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { countNaN, randomBf16Values, randomGenerator, referenceCausalAttention, relativeError } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA model-ops tests skipped: ${skip}`);

const TOLERANCE = 5e-3;

describe('CUDA model kernels', { skip }, () => {
  let rt: CudaRuntime;
  let ops: ModelOpsKernels;
  before(async () => {
    rt = new (await import('../../src/backends/cuda/runtime.js')).CudaRuntime();
    ops = new (await import('../../src/backends/cuda/kernels/model-ops.js')).ModelOpsKernels(rt);
  });
  after(() => rt?.dispose());

  const uploadI32 = (values: Int32Array) => {
    const b = rt.pool.acquire(values.byteLength);
    rt.cuda.upload(b.ptr, values);
    return b;
  };

  test('embedding gather with scale', () => {
    const V = 50, C = 300, ids = Int32Array.from([3, 49, 0, 3, 17]);
    const table = randomBf16Values(V * C, randomGenerator(1), 2);
    const scale = 1.5;
    const ref = new Float32Array(ids.length * C);
    ids.forEach((id, t) => { for (let i = 0; i < C; i++) ref[t * C + i] = table[id * C + i] * scale; });
    const dt = uploadAsBf16(rt, table), di = uploadI32(ids), dout = poisonedBf16(rt, ref.length);
    ops.embed({ ids: di.ptr, table: dt.ptr, out: dout.ptr, tokens: ids.length, cols: C, scale });
    const out = downloadBf16(rt, dout, ref.length);
    for (const b of [dt, di, dout]) rt.pool.release(b);
    assert.equal(countNaN(out), 0);
    assert.ok(relativeError(out, ref) < TOLERANCE, `rel err ${relativeError(out, ref)}`);
  });

  for (const activation of ['silu', 'gelu_tanh'] as const) {
    test(`gated activation ${activation} over fused gate|up rows`, () => {
      const rows = 7, I = 333;
      const gu = randomBf16Values(rows * 2 * I, randomGenerator(2), 4);
      const act = (g: number) => (activation === 'silu' ? g / (1 + Math.exp(-g)) : 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g ** 3))));
      const ref = new Float32Array(rows * I);
      for (let r = 0; r < rows; r++) for (let i = 0; i < I; i++) ref[r * I + i] = act(gu[r * 2 * I + i]) * gu[r * 2 * I + I + i];
      const dgu = uploadAsBf16(rt, gu), dout = poisonedBf16(rt, ref.length);
      ops.gatedActivation({ gateUp: dgu.ptr, out: dout.ptr, rows, inner: I, activation });
      const out = downloadBf16(rt, dout, ref.length);
      for (const b of [dgu, dout]) rt.pool.release(b);
      assert.equal(countNaN(out), 0);
      assert.ok(relativeError(out, ref) < TOLERANCE, `rel err ${relativeError(out, ref)}`);
    });
  }

  test('bias add, per-head RMSNorm and RoPE inside strided rows leave the other columns alone', () => {
    const T = 9, H = 3, D = 64, stride = 5 * D; // heads [0, H) of each row, then untouched columns
    const rand = randomGenerator(3);
    const x = randomBf16Values(T * stride, rand, 2);
    const bias = randomBf16Values(stride, rand, 0.5);
    const w = randomBf16Values(D, rand, 1);
    const positions = Int32Array.from({ length: T }, (_, t) => 1000 + 31 * t);
    const invFreq = Float32Array.from({ length: D / 2 }, (_, i) => Math.fround(1 / 10000 ** ((2 * i) / D)));
    const eps = 1e-6, offset = 1;
    const ref = new Float64Array(T * stride);
    for (let i = 0; i < ref.length; i++) ref[i] = Math.fround(x[i] + bias[i % stride]);
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
      const o = t * stride + h * D;
      let ss = 0;
      for (let i = 0; i < D; i++) ss += ref[o + i] ** 2;
      const inv = 1 / Math.sqrt(ss / D + eps);
      for (let i = 0; i < D; i++) ref[o + i] *= inv * (w[i] + offset);
      for (let i = 0; i < D / 2; i++) {
        const angle = Math.fround(positions[t] * invFreq[i]);
        const c = Math.cos(angle), s = Math.sin(angle);
        const x1 = ref[o + i], x2 = ref[o + i + D / 2];
        ref[o + i] = x1 * c - x2 * s;
        ref[o + i + D / 2] = x2 * c + x1 * s;
      }
    }
    const dx = uploadAsBf16(rt, x), db = uploadAsBf16(rt, bias), dw = uploadAsBf16(rt, w);
    const dpos = uploadI32(positions);
    const dfreq = rt.pool.acquire(invFreq.byteLength);
    rt.cuda.upload(dfreq.ptr, invFreq);
    ops.biasAdd({ y: dx.ptr, bias: db.ptr, rows: T, cols: stride });
    ops.rmsNormHeads({ x: dx.ptr, weight: dw.ptr, tokens: T, heads: H, headDim: D, rowStride: stride, eps, weightOffset: offset });
    ops.ropeHeads({ x: dx.ptr, positions: dpos.ptr, invFreq: dfreq.ptr, tokens: T, heads: H, headDim: D, rowStride: stride });
    const out = downloadBf16(rt, dx, x.length);
    for (const b of [dx, db, dw, dpos, dfreq]) rt.pool.release(b);
    assert.equal(countNaN(out), 0);
    assert.ok(relativeError(out, Float32Array.from(ref)) < 2 * TOLERANCE, `rel err ${relativeError(out, Float32Array.from(ref))}`);
  });

  test('softcap over fp32 logits', () => {
    const n = 5000, cap = 30;
    const x = Float32Array.from({ length: n }, (_, i) => (i - n / 2) * 0.05);
    const d = rt.pool.acquire(x.byteLength);
    rt.cuda.upload(d.ptr, x);
    ops.softcap({ x: d.ptr, n, cap });
    const out = downloadF32(rt, d, n);
    rt.pool.release(d);
    const ref = x.map((v) => cap * Math.tanh(v / cap));
    assert.ok(relativeError(out, ref) < 1e-5, `rel err ${relativeError(out, ref)}`);
  });

  test('uniform fill: every value written, mean and spread as asked, deterministic', () => {
    const n = 1 << 20, mean = 0.25, halfWidth = 0.5;
    const a = poisonedBf16(rt, n), b = poisonedBf16(rt, n);
    ops.fillUniform({ x: a.ptr, n, seed: 42, mean, halfWidth });
    ops.fillUniform({ x: b.ptr, n, seed: 42, mean, halfWidth });
    const va = downloadBf16(rt, a, n), vb = downloadBf16(rt, b, n);
    rt.pool.release(a);
    rt.pool.release(b);
    assert.equal(countNaN(va), 0);
    assert.deepEqual(va, vb);
    let s = 0, ss = 0, lo = Infinity, hi = -Infinity;
    for (const v of va) { s += v; ss += v * v; lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const m = s / n, std = Math.sqrt(ss / n - m * m);
    assert.ok(Math.abs(m - mean) < 0.01, `mean ${m}`);
    assert.ok(Math.abs(std - halfWidth / Math.sqrt(3)) < 0.01, `std ${std}`);
    assert.ok(lo >= mean - halfWidth - 1e-2 && hi <= mean + halfWidth + 1e-2, `range [${lo}, ${hi}]`);
  });

  for (const [D, window] of [[16, null], [16, 5], [40, null]] as const) {
    test(`small-head attention D=${D} window=${window}: chunk of queries mid-cache and a decode row`, async () => {
      const { SmallHeadAttention } = await import('../../src/backends/cuda/kernels/small-head-attention.js');
      const H = 6, Hkv = 2, kvStride = 80, queryStart = 37, T = 23, kvLen = queryStart + T;
      const rand = randomGenerator(D * 7 + (window ?? 0));
      const qStride = (H + 2) * D; // q inside wider rows, as in fused qkv projections
      const qRows = randomBf16Values(T * qStride, rand, 1);
      const q = new Float32Array(T * H * D);
      for (let t = 0; t < T; t++) q.set(qRows.subarray(t * qStride, t * qStride + H * D), t * H * D);
      const k = randomBf16Values(Hkv * kvStride * D, rand, 1), v = randomBf16Values(Hkv * kvStride * D, rand, 1);
      const scale = 1 / Math.sqrt(D);
      const attn = new SmallHeadAttention(rt, { numHeads: H, numKvHeads: Hkv, headDim: D });
      const dq = uploadAsBf16(rt, qRows), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v), dout = poisonedBf16(rt, T * H * D);
      attn.run({ q: dq.ptr, qRowStride: qStride, k: dk.ptr, v: dv.ptr, out: dout.ptr, numQueries: T, queryStart, kvLen, kvStride, scale, slidingWindow: window });
      const out = downloadBf16(rt, dout, T * H * D);
      const ref = referenceCausalAttention(q, k, v, T, H, Hkv, D, kvStride, queryStart, kvLen, scale, window);
      assert.equal(countNaN(out), 0);
      assert.ok(relativeError(out, ref) < TOLERANCE, `prefill rel err ${relativeError(out, ref)}`);
      // Decode: the last query alone, as the model calls it (T = 1, queryStart = kvLen - 1).
      const dec = poisonedBf16(rt, H * D);
      attn.run({ q: dq.ptr + BigInt((T - 1) * qStride * 2), k: dk.ptr, v: dv.ptr, out: dec.ptr, numQueries: 1, queryStart: kvLen - 1, kvLen, kvStride, scale, slidingWindow: window });
      const decOut = downloadBf16(rt, dec, H * D);
      const decRef = ref.subarray((T - 1) * H * D);
      for (const b of [dq, dk, dv, dout, dec]) rt.pool.release(b);
      assert.equal(countNaN(decOut), 0);
      assert.ok(relativeError(decOut, decRef) < TOLERANCE, `decode rel err ${relativeError(decOut, decRef)}`);
    });
  }
});
