import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockedJsKernel, referenceMatmul, type MatmulKernel } from '../../../src/backends/cpu/matmul.js';
import { roundToDtype } from '../../../src/backends/cpu/ops.js';
import { rng } from '../../engine/model-fixtures.js';

function random(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

export function checkKernelAgainstReference(kernel: MatmulKernel): void {
  // Odd sizes exercise every remainder path (tokens and rows not multiples of the tile).
  for (const [T, O, I] of [[1, 1, 1], [1, 7, 5], [3, 5, 17], [4, 8, 16], [5, 13, 33], [37, 9, 70], [64, 68, 129]]) {
    const x = random(T * I, T * 100 + O);
    const w = random(O * I, O * 100 + I);
    const bias = random(O, 5);
    for (const b of [undefined, bias]) {
      const want = new Float32Array(T * O);
      referenceMatmul(x, T, w, O, I, want, b);
      const got = new Float32Array(T * O);
      kernel.matmul(x, T, kernel.prepare(w.slice(), O, I, b?.slice()), got);
      for (let i = 0; i < want.length; i++) {
        assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i])), `${kernel.name} [${T},${O},${I}] bias=${!!b} at ${i}: ${got[i]} vs ${want[i]}`);
      }
    }
  }
}

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
