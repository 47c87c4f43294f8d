/** Check a kernel against the reference on odd shapes (every remainder path) within 1e-5 relative. */
import assert from 'node:assert/strict';
import { referenceMatmul, type MatmulKernel } from '../../../src/backends/cpu/matmul.js';
import { rng } from '../../engine/model-fixtures.js';

function random(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

export function checkKernelAgainstReference(kernel: MatmulKernel): void {
  // Odd sizes exercise every remainder path (tokens and rows not multiples of the tile).
  for (const [T, O, I] of [[1, 1, 1], [1, 7, 5], [3, 5, 17], [4, 8, 16], [5, 13, 33], [37, 9, 70], [64, 68, 129], [67, 9, 64], [130, 21, 36]]) {
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

