/**
 * The CPU model behind docs/perf.md's "Session 5" CTA-order analysis (bench/block-sparse-l2-model.ts):
 * its synthetic random selections have the CPU method's shape (t chunks, the forced ones, causal,
 * distinct), and its LRU replay counts what a cache of a given size must miss (only first touches when
 * everything fits, nearly every gather when one tile fits).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MODEL_TILINGS, randomChunkList, simulateL2 } from '../../bench/block-sparse-l2-model.js';
import { mulberry32 } from '../../bench/seeded-random.js';

describe('block-sparse L2 model', () => {
  test('a synthetic random list keeps t distinct causal chunks with 0, m - 1 and m forced (all of 0..m when t > m)', () => {
    const B = 200;
    const scratch = Int32Array.from({ length: B }, (_, i) => i);
    const out: number[] = [];
    for (const [m, t] of [[150, 20], [5, 3], [10, 11], [199, 199], [60, 59]]) {
      randomChunkList(m, t, mulberry32(m * 31 + t), scratch, out);
      const expected = Math.min(t, m + 1);
      assert.equal(out.length, expected, `m=${m} t=${t}: count`);
      assert.equal(new Set(out).size, expected, `m=${m} t=${t}: distinct`);
      assert.ok(out.every((j) => j >= 0 && j <= m), `m=${m} t=${t}: causal`);
      for (const forced of [0, m - 1, m]) assert.ok(out.includes(forced), `m=${m} t=${t}: chunk ${forced} forced`);
      assert.deepEqual([...scratch], Array.from({ length: B }, (_, i) => i), 'the scratch permutation is restored');
    }
  });

  test('a cache holding every tile misses only first touches, in both orders; a one-tile cache misses nearly all', () => {
    const n = 1024; // 64 tiles of 16 keys per KV head, 8 KV heads: 512 distinct tiles, 4 MB of K + V
    for (const order of ['heads', 'kv'] as const) {
      const [big, tiny] = simulateL2(n, 0.9, MODEL_TILINGS.n128, order, [50, 0.008]);
      const gathers = big.tilesPerCta * big.ctas;
      assert.ok(Math.abs(big.missShare * gathers - 512) < 1e-6, `${order}: ${big.missShare * gathers} misses, expected 512 first touches`);
      assert.ok(tiny.missShare > 0.9, `${order}: a one-tile cache missed only ${tiny.missShare}`);
      assert.ok(big.tail >= 1, 'the makespan is never shorter than the balanced one');
    }
  });
});
