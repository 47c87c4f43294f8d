import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RopeTable, inverseFrequencies } from '../../src/engine/rope.js';

const llama3 = (theta: number) => ({
  theta,
  scaling: { kind: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 1000 },
});

test('RoPE llama3 scaling: high, medium and low frequencies against hand-computed values', () => {
  // D = 4, theta = 1e4: base inverse frequencies [1, 0.01]; wavelengths 2π and 200π ≈ 628.3.
  // Thresholds: low-freq wavelength 1000/1 = 1000, high-freq 1000/4 = 250.
  // Frequency 0 (wavelength 6.28 < 250) is kept; frequency 1 (250 < 628.3 < 1000) is blended:
  // smooth = (1000/628.3185 − 1)/(4 − 1) = 0.1971831; inv = (1 − smooth)·0.01/8 + smooth·0.01 = 0.0029754.
  const inv = inverseFrequencies(llama3(1e4), 4);
  assert.equal(inv[0], 1);
  assert.ok(Math.abs(inv[1] - 0.0029754) < 1e-7, `medium frequency ${inv[1]}`);
  // theta = 1e6: frequency 1 is 0.001 (wavelength 6283 > 1000): divided by the factor, 0.000125.
  const low = inverseFrequencies(llama3(1e6), 4);
  assert.ok(Math.abs(low[1] - 0.000125) < 1e-10, `low frequency ${low[1]}`);
});

test('RoPE linear scaling divides every frequency by the factor', () => {
  const base = inverseFrequencies({ theta: 1e4, scaling: { kind: 'none' } }, 8);
  const lin = inverseFrequencies({ theta: 1e4, scaling: { kind: 'linear', factor: 4 } }, 8);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(lin[i] - base[i] / 4) < 1e-7 * base[i]);
  // Default frequencies: 1 / 1e4^(2i/8) = 1, 0.1, 0.01, 0.001.
  [1, 0.1, 0.01, 0.001].forEach((v, i) => assert.ok(Math.abs(base[i] - v) < 1e-6 * v));
});

test('RoPE rotates the (i, i + D/2) pairs (rotate_half layout) and keeps norms', () => {
  const table = new RopeTable({ theta: 1e4, scaling: { kind: 'none' } }, 4);
  // One token at position 3, one head: x = [1, 2, 3, 4]; pairs (1, 3) at freq 1 and (2, 4) at freq 0.01.
  const x = new Float32Array([1, 2, 3, 4]);
  table.apply(x, 1, 1, [3]);
  const c0 = Math.cos(3), s0 = Math.sin(3), c1 = Math.cos(0.03), s1 = Math.sin(0.03);
  const expected = [1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1];
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(x[i] - expected[i]) < 1e-5, `x[${i}] = ${x[i]}, want ${expected[i]}`);
  // Position 0 is the identity.
  const y = new Float32Array([1, 2, 3, 4]);
  table.apply(y, 1, 1, [0]);
  assert.deepEqual([...y], [1, 2, 3, 4]);
});
