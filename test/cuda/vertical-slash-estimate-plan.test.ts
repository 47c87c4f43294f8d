/**
 * Host side of the GPU Vertical-Slash estimate (no device needed): the fixed-point format of the
 * deterministic diagonal sums (S fraction bits for A scoring rows: the sum of A weights <= 1 fits a
 * quarter of the unsigned 64-bit range, with the most bits that allows) and the launch plan's checks.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MAX_VERTICAL_SLASH_APPROXIMATION, slashFixedPointBits, verticalSlashEstimatePlan,
} from '../../src/backends/cuda/kernels/vertical-slash-estimate.js';
import { randomGenerator } from './helpers.js';

const TWO_62 = 1n << 62n;

describe('vertical-slash estimate: fixed-point diagonal sums and launch plan (CPU)', () => {
  test('S fraction bits: A·2^S <= 2^62 < 2·A·2^S for every A (no overflow, no bit left unused)', () => {
    const rand = randomGenerator(5);
    const samples = [...Array.from({ length: 5000 }, (_, i) => i + 1), MAX_VERTICAL_SLASH_APPROXIMATION];
    for (let i = 0; i < 2000; i++) samples.push(1 + Math.floor(((rand() + 1) / 2) * (MAX_VERTICAL_SLASH_APPROXIMATION - 1)));
    for (let p = 0; p <= 24; p++) samples.push(2 ** p, 2 ** p + 1, Math.max(1, 2 ** p - 1));
    for (const A of samples) {
      if (A > MAX_VERTICAL_SLASH_APPROXIMATION) continue;
      const S = slashFixedPointBits(A);
      const scaled = BigInt(A) << BigInt(S);
      assert.ok(scaled <= TWO_62, `A=${A}: A·2^${S} exceeds 2^62`);
      assert.ok(2n * scaled > TWO_62, `A=${A}: S=${S} leaves a bit unused`);
    }
    assert.deepEqual([1, 2, 3, 512, 513, 2 ** 24].map(slashFixedPointBits), [62, 61, 60, 53, 52, 38]);
  });

  test('the kernels\' f32 arguments 2^S and 2^-S are exact powers of two for every allowed S', () => {
    for (let S = slashFixedPointBits(MAX_VERTICAL_SLASH_APPROXIMATION); S <= slashFixedPointBits(1); S++) {
      assert.equal(Math.fround(2 ** S), 2 ** S);
      assert.equal(Math.fround(2 ** -S), 2 ** -S);
    }
  });

  test('refuses approximation sizes outside [1, 2^24] or not integers, naming the value', () => {
    for (const A of [0, -3, 1.5, Number.NaN, MAX_VERTICAL_SLASH_APPROXIMATION + 1]) {
      assert.throws(() => slashFixedPointBits(A), new RegExp(`approximation size must be an integer in \\[1, ${MAX_VERTICAL_SLASH_APPROXIMATION}\\].*got ${A}`));
    }
  });

  test('plan: the key splits cover every tile; an A whose u64 diagonal sums overflow shared memory is refused', () => {
    for (const [n, A, H, D] of [[16_384, 512, 32, 128], [333, 333, 4, 64], [130, 1, 2, 64], [100_000, 256, 4, 128]]) {
      const plan = verticalSlashEstimatePlan(n, A, H, D);
      assert.equal(plan.numTiles, Math.ceil(n / 64));
      assert.ok(plan.splits >= 1 && plan.splits * plan.tilesPerSplit >= plan.numTiles, `n=${n} A=${A}: splits miss tiles`);
      assert.ok((plan.splits - 1) * plan.tilesPerSplit < plan.numTiles, `n=${n} A=${A}: an empty split`);
      assert.ok(plan.columnDiagSharedBytes <= 227 * 1024);
      assert.equal(plan.fixedPointBits, slashFixedPointBits(A));
    }
    // Each 64 more rows add 64 u64 diagonal sums (512 B).
    const small = verticalSlashEstimatePlan(4096, 64, 4, 128), larger = verticalSlashEstimatePlan(4096, 128, 4, 128);
    assert.equal(larger.columnDiagSharedBytes - small.columnDiagSharedBytes, 64 * 8);
    assert.throws(() => verticalSlashEstimatePlan(40_000, 30_000, 4, 128), /approximation size 30000 needs \d+ B of shared memory/);
  });
});
