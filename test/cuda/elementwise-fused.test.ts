/**
 * The fused small kernels of the decode step (CudaTransformerModel.fuseSmallNodes) against the kernels
 * they replace, bit for bit: add_rmsnorm against add then rmsnorm (the new residual and the normed row;
 * rows in the register form and wider ones in the loop form),
 * and rope_append_at against bias_add_rows, rope_heads over q then k, and a K/V append of the row (the qkv
 * row in place and both cache rows). Random bf16 inputs; outputs poisoned first. argmax_rows' 16-byte
 * path and scalar path on ties and an all -inf row. GPU only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ElementwiseKernels } from '../../src/backends/cuda/kernels/elementwise.js';
import type { ModelOpsKernels } from '../../src/backends/cuda/kernels/model-ops.js';
import type { DeviceBuffer } from '../../src/backends/cuda/memory-pool.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { cudaSkip } from './cuda-skip.js';
import { countNaN, randomBf16Values, randomGenerator } from './helpers.js';

const skip = cudaSkip('CUDA fused decode-step kernel tests');

/** Index of the first element that differs (bitwise for non-NaN values), or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

describe('CUDA fused decode-step kernels', { skip }, () => {
  let rt: CudaRuntime;
  let ew: ElementwiseKernels;
  let ops: ModelOpsKernels;
  const held: DeviceBuffer[] = [];
  const keep = (b: DeviceBuffer): DeviceBuffer => (held.push(b), b);
  before(async () => {
    rt = new (await import('../../src/backends/cuda/runtime.js')).CudaRuntime();
    ew = new (await import('../../src/backends/cuda/kernels/elementwise.js')).ElementwiseKernels(rt);
    ops = new (await import('../../src/backends/cuda/kernels/model-ops.js')).ModelOpsKernels(rt);
  });
  after(() => {
    if (!rt) return;
    rt.synchronize();
    for (const b of held.splice(0)) rt.pool.release(b);
    rt.dispose();
  });

  // 9000: wider than the register form (8192), both kernels take their loop form.
  for (const [rows, cols, offset] of [[1, 4096, 0], [1, 3584, 0], [5, 1000, 1], [3, 130, 0], [2, 9000, 0]] as const) {
    test(`add_rmsnorm ${rows}x${cols} weightOffset=${offset}: the same bits as add then rmsnorm`, () => {
      const rand = randomGenerator(rows * 31 + cols);
      const x = randomBf16Values(rows * cols, rand, 4), r = randomBf16Values(rows * cols, rand, 2), w = randomBf16Values(cols, rand, 1);
      const eps = 1e-5;
      const dw = keep(uploadAsBf16(rt, w)), dr = keep(uploadAsBf16(rt, r));
      const x1 = keep(uploadAsBf16(rt, x)), out1 = keep(poisonedBf16(rt, rows * cols));
      ew.add({ a: x1.ptr, b: dr.ptr, out: x1.ptr, n: rows * cols });
      ew.rmsNorm({ x: x1.ptr, weight: dw.ptr, out: out1.ptr, rows, cols, eps, weightOffset: offset });
      const x2 = keep(uploadAsBf16(rt, x)), out2 = keep(poisonedBf16(rt, rows * cols));
      ew.addRmsNorm({ x: x2.ptr, residual: dr.ptr, weight: dw.ptr, out: out2.ptr, rows, cols, eps, weightOffset: offset });
      const [sumRef, normRef, sum, norm] = [x1, out1, x2, out2].map((b) => downloadBf16(rt, b, rows * cols));
      assert.equal(countNaN(norm), 0);
      assert.equal(firstDifference(sum, sumRef), -1, 'residual stream');
      assert.equal(firstDifference(norm, normRef), -1, 'normed row');
      assert.throws(() => ew.addRmsNorm({ x: x2.ptr, residual: dr.ptr, weight: dw.ptr, out: x2.ptr, rows, cols, eps }), /alias/);
    });
  }

  const CASES = [
    { H: 32, Hkv: 8, D: 128, bias: false, position: 4097 },
    { H: 28, Hkv: 4, D: 128, bias: true, position: 70000 },
    { H: 8, Hkv: 2, D: 64, bias: true, position: 0 },
    { H: 4, Hkv: 2, D: 256, bias: false, position: 31 },
  ];
  for (const { H, Hkv, D, bias, position } of CASES) {
    test(`rope_append_at H=${H} Hkv=${Hkv} D=${D} bias=${bias} at ${position}: the same bits as bias, RoPE q, RoPE k, append`, () => {
      const qkvDim = (H + 2 * Hkv) * D, capacity = position + 3;
      const rand = randomGenerator(H * 1000 + D + position);
      const row = randomBf16Values(qkvDim, rand, 3);
      const b = randomBf16Values(qkvDim, rand, 0.5);
      const invFreq = Float32Array.from({ length: D / 2 }, (_, i) => 1 / 500000 ** ((2 * i) / D));
      const dFreq = keep(rt.pool.acquire(invFreq.byteLength));
      rt.cuda.upload(dFreq.ptr, invFreq);
      const dPos = keep(rt.pool.acquire(16));
      rt.cuda.upload(dPos.ptr, Int32Array.of(position));
      const dBias = keep(uploadAsBf16(rt, b));
      const cacheElements = Hkv * capacity * D;
      const caches = () => [keep(poisonedBf16(rt, cacheElements)), keep(poisonedBf16(rt, cacheElements))];

      // Reference: the separate kernels, then the row copied into the caches at `position` (what
      // kv_append does with T = 1 and startRow = position).
      const refRow = keep(uploadAsBf16(rt, row));
      const [refK, refV] = caches();
      if (bias) ops.biasAdd({ y: refRow.ptr, bias: dBias.ptr, rows: 1, cols: qkvDim });
      ops.ropeHeads({ x: refRow.ptr, positions: dPos.ptr, invFreq: dFreq.ptr, tokens: 1, heads: H, headDim: D, rowStride: qkvDim });
      ops.ropeHeads({ x: refRow.ptr + BigInt(H * D * 2), positions: dPos.ptr, invFreq: dFreq.ptr, tokens: 1, heads: Hkv, headDim: D, rowStride: qkvDim });
      const append = rt.module('kv-append.cu', {}).kernel('kv_append', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
      append.launch({ grid: [Math.ceil((Hkv * D) / 8 / 256), 1, 1], block: [256, 1, 1], sharedBytes: 0, stream: rt.stream },
        [refRow.ptr + BigInt(H * D * 2), refRow.ptr + BigInt((H + Hkv) * D * 2), refK.ptr, refV.ptr, 1, Hkv, D, qkvDim, capacity, position]);

      const gotRow = keep(uploadAsBf16(rt, row));
      const [gotK, gotV] = caches();
      ops.ropeAppendAt({ qkv: gotRow.ptr, bias: bias ? dBias.ptr : null, invFreq: dFreq.ptr, kCache: gotK.ptr, vCache: gotV.ptr, position: dPos.ptr,
        heads: H, kvHeads: Hkv, headDim: D, capacity });

      const [rowRef, rowGot] = [refRow, gotRow].map((x) => downloadBf16(rt, x, qkvDim));
      assert.equal(countNaN(rowGot), 0);
      assert.equal(firstDifference(rowGot, rowRef), -1, 'qkv row');
      for (const [name, ref, got] of [['K', refK, gotK], ['V', refV, gotV]] as const) {
        const all = [ref, got].map((x) => downloadBf16(rt, x, cacheElements));
        // Only row `position` of each head is written; the rest stays poisoned in both.
        for (let h = 0; h < Hkv; h++) {
          const at = (h * capacity + position) * D;
          const [r, g] = all.map((a) => a.subarray(at, at + D));
          assert.equal(countNaN(g), 0, `${name} head ${h} row written`);
          assert.equal(firstDifference(g, r), -1, `${name} cache row of head ${h}`);
        }
        assert.equal(countNaN(all[1]), countNaN(all[0]), `${name}: no other row written`);
      }
    });
  }

  test('argmax: 16-byte path and scalar path (V not a multiple of 4), ties inside a float4 and across threads, an all -inf row', () => {
    for (const V of [128_256, 50_001]) {
      const rows = 4;
      const rand = randomGenerator(V);
      const logits = new Float32Array(rows * V);
      for (let i = 0; i < logits.length; i++) logits[i] = rand() * 10;
      // Row 0: tie inside one float4 (4001 and 4003); row 1: tie far apart (lower index wins); row 2: all -inf; row 3: last element.
      logits[4001] = 40;
      logits[4003] = 40;
      logits[V + 70_000 % V] = 40;
      logits[V + 9] = 40;
      logits.fill(-Infinity, 2 * V, 3 * V);
      logits[3 * V + V - 1] = 41;
      const expected = [4001, 9, 0, V - 1];
      const dl = keep(rt.pool.acquire(logits.byteLength));
      rt.cuda.upload(dl.ptr, logits);
      const dout = keep(rt.pool.acquire(rows * 4));
      rt.cuda.fill32Async(dout.ptr, 0x7fc00000, rows, rt.stream);
      ew.argmaxRows({ logits: dl.ptr, out: dout.ptr, rows, vocab: V });
      rt.synchronize();
      const got = new Int32Array(rows);
      rt.cuda.download(got, dout.ptr);
      assert.deepEqual([...got], expected, `V = ${V}`);
    }
  });
});
