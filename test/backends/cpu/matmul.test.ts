import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockedJsKernel } from '../../../src/backends/cpu/matmul.js';
import { checkKernelAgainstReference } from './kernel-check.js';
import { createMatmulKernel } from '../../../src/backends/cpu/kernels.js';
import { roundToDtype } from '../../../src/backends/cpu/ops.js';

test('blocked JS matmul equals the reference within 1e-5 relative', () => {
  checkKernelAgainstReference(new BlockedJsKernel());
});

test('matmul rejects mismatched shapes with a clear error', () => {
  const k = new BlockedJsKernel();
  assert.throws(() => k.prepare(new Float32Array(5), 2, 3), /expected \[2, 3\]/);
  const m = k.prepare(new Float32Array(6), 2, 3);
  assert.throws(() => k.matmul(new Float32Array(5), 2, m, new Float32Array(4)), /need \[2, 3\]/);
});

test('roundToDtype: bf16 and f16 rounding of a scale factor', () => {
  assert.equal(roundToDtype(Math.sqrt(24), 'bfloat16'), 4.90625);
  assert.equal(roundToDtype(Math.sqrt(1152), 'bfloat16'), 34);
  assert.equal(roundToDtype(Math.sqrt(24), 'float16'), 4.8984375);
  assert.equal(roundToDtype(Math.sqrt(24), 'float32'), Math.fround(Math.sqrt(24)));
});

test("kernel choice: 'auto' falls back to the JS kernel when the weights cannot fit wasm memory", () => {
  assert.equal(createMatmulKernel('auto', 1e6).name, 'wasm-simd');
  assert.equal(createMatmulKernel('auto', 5 * 2 ** 30).name, 'js-blocked');
  assert.equal(createMatmulKernel('js-blocked').name, 'js-blocked');
  assert.throws(() => createMatmulKernel('cuda'), /unknown matmul kernel "cuda"/);
});
