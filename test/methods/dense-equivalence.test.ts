import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAttentionPlan, listMethods } from '../../src/methods/index.js';
import { DenseDecode, DensePrefill } from '../../src/methods/dense.js';
import { RangeList, SparseAttentionScratch, SparseAttentionScratch4, attendSparseRows, attendSparseRows4 } from '../../src/backends/cpu/sparse-attention.js';
import { achievedSparsity, cacheOf, maskedReference, maxAbsDiff, rng, runDecode, runPrefill, synthetic } from './helpers.js';

test('sparse kernel: ranges + rows equal an explicit-mask dense reference', () => {
  const data = synthetic(97, 4, 2, 16, 11);
  const r = rng(5);
  const { numHeads: H, headDim: D, scale } = data.shape;
  const ranges = new RangeList();
  const scratch = new SparseAttentionScratch();
  const out = new Float32Array(data.n * H * D);
  const chosen: Set<number>[] = [];
  const cache = cacheOf(data);
  for (let q = 0; q < data.n; q++) {
    // Random disjoint ranges plus a few single rows, all causal.
    const set = new Set<number>();
    ranges.clear();
    let k = 0;
    while (k <= q) {
      const len = 1 + Math.floor(r() * 8);
      if (r() < 0.5) {
        ranges.push(k, Math.min(q + 1, k + len));
        for (let j = k; j < Math.min(q + 1, k + len); j++) set.add(j);
      }
      k += len + 1;
    }
    const rows: number[] = [];
    for (let j = 0; j <= q; j++) if (!set.has(j) && r() < 0.1) rows.push(j);
    for (const j of rows) set.add(j);
    chosen.push(set);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / 2);
      const off = (q * H + h) * D;
      const visited = attendSparseRows(
        data.queries, off, cache.keys[kvh], cache.values[kvh], D, ranges.data, ranges.count, Int32Array.from(rows), rows.length, scale, null, out, off, scratch,
      );
      assert.equal(visited, set.size);
    }
  }
  const ref = maskedReference(data, (_h, q, k) => chosen[q].has(k));
  assert.ok(maxAbsDiff(out, ref.out) < 1e-5);
});

test('every prefill method at s = 0 reproduces dense attention to 1e-5', () => {
  for (const [n, H, Hkv] of [[150, 4, 2], [300, 4, 1]] as const) {
    const data = synthetic(n, H, Hkv, 16, 100 + n);
    const dense = runPrefill(new DensePrefill(), data);
    for (const method of listMethods().filter((m) => m.phase === 'prefill')) {
      const plan = createAttentionPlan(method.id, { sparsity: 0 });
      const got = runPrefill(plan.prefill, data);
      assert.ok(maxAbsDiff(got.out, dense.out) < 1e-5, `${method.id} n=${n}: ${maxAbsDiff(got.out, dense.out)}`);
      assert.equal(achievedSparsity(got.counts), 0, method.id);
      assert.deepEqual(Array.from(got.counts.dense), Array.from(dense.counts.dense));
    }
  }
});

test('every decode method at s = 0 reproduces dense decoding to 1e-5', () => {
  for (const [n, H, Hkv] of [[200, 4, 2], [333, 2, 2]] as const) {
    const data = synthetic(n, H, Hkv, 16, 7 + n);
    const dense = runDecode(new DenseDecode(), data, 20, 3);
    for (const method of listMethods().filter((m) => m.phase === 'decode')) {
      const plan = createAttentionPlan(method.id, { sparsity: 0 });
      const got = runDecode(plan.decode, data, 20, 3);
      for (let step = 0; step < 20; step++) {
        assert.ok(maxAbsDiff(got.outs[step], dense.outs[step]) < 1e-5, `${method.id} step ${step}`);
        assert.equal(achievedSparsity(got.counts[step]), 0, method.id);
      }
    }
  }
});

test('the plan pairs a method with dense attention for the other phase', () => {
  assert.equal(createAttentionPlan('quest', { sparsity: 0.5 }).prefill.id, 'dense');
  assert.equal(createAttentionPlan('vertical_and_slash', { sparsity: 0.5 }).decode.id, 'dense');
  const dense = createAttentionPlan('dense');
  assert.equal(dense.prefill.id, 'dense');
  assert.equal(dense.decode.id, 'dense');
});

test('short and block-edge prompts: every method runs, counts stay causal, s = 0 stays dense', () => {
  for (const n of [1, 2, 5, 16, 17, 63, 64, 65, 129]) {
    const data = synthetic(n, 2, 1, 8, 500 + n);
    const dense = runPrefill(new DensePrefill(), data);
    const denseDecode = runDecode(new DenseDecode(), data, 2, 1);
    for (const method of listMethods().filter((m) => m.id !== 'dense')) {
      for (const s of [0, 0.6]) {
        const plan = createAttentionPlan(method.id, { sparsity: s });
        if (method.phase === 'prefill') {
          const got = runPrefill(plan.prefill, data);
          for (let h = 0; h < 2; h++) {
            assert.ok(got.counts.attended[h] >= n && got.counts.attended[h] <= got.counts.dense[h], `${method.id} n=${n}: every query sees at least itself`);
          }
          if (s === 0) assert.ok(maxAbsDiff(got.out, dense.out) < 1e-5, `${method.id} n=${n}`);
        } else {
          const got = runDecode(plan.decode, data, 2, 1);
          for (const c of got.counts) assert.ok(c.attended[0] >= 1 && c.attended[0] <= c.dense[0]);
          if (s === 0) assert.ok(maxAbsDiff(got.outs[1], denseDecode.outs[1]) < 1e-5, `${method.id} n=${n}`);
        }
      }
    }
  }
});

test('four-query kernel: shared ranges and rows, per-query limits, partial groups, equal a masked reference', () => {
  const data = synthetic(90, 4, 2, 12, 77);
  const { numHeads: H, headDim: D, scale } = data.shape;
  const cache = cacheOf(data);
  const r = rng(8);
  const out = new Float32Array(data.n * H * D).fill(Number.NaN);
  const allowed: Set<number>[][] = Array.from({ length: H }, () => Array.from({ length: data.n }, () => new Set<number>()));
  const scratch = new SparseAttentionScratch4();
  const visited = new Int32Array(4);
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < data.n; t += 3) {
      const count = Math.min(3, data.n - t); // groups of three exercise the inactive slot
      const ranges = new RangeList();
      const a = Math.floor(r() * 40);
      ranges.push(a, a + Math.floor(r() * 50));
      const rowList = Int32Array.from(new Set([Math.floor(r() * 20), 85, 89].filter((x) => x < a)));
      const qOffs = new Int32Array(4), lower = new Int32Array(4), upper = new Int32Array(4);
      for (let i = 0; i < count; i++) {
        qOffs[i] = ((t + i) * H + h) * D;
        upper[i] = t + i;
        lower[i] = Math.floor(r() * 10);
        for (let k = 0; k < data.n; k++) {
          const inSet = (k >= a && k < ranges.data[1] && ranges.count > 0) || rowList.includes(k);
          if (inSet && k >= lower[i] && k <= upper[i]) allowed[h][t + i].add(k);
        }
      }
      attendSparseRows4(data.queries, qOffs, count, cache.keys[h >> 1], cache.values[h >> 1], D, ranges.data, ranges.count, rowList, rowList.length, lower, upper, scale, null, out, qOffs, scratch, visited);
      for (let i = 0; i < count; i++) assert.equal(visited[i], allowed[h][t + i].size);
    }
  }
  const ref = maskedReference(data, (h, q, k) => allowed[h][q].has(k));
  assert.ok(maxAbsDiff(out, ref.out) < 1e-5);
});

test('dense prefill with a sliding window, in chunks, equals a masked reference', () => {
  const data = synthetic(70, 4, 2, 8, 78);
  const window = 7;
  const shape = { ...data.shape, slidingWindow: window };
  const { numHeads: H, headDim: D } = shape;
  const out = new Float32Array(70 * H * D);
  const method = new DensePrefill();
  for (let start = 0; start < 70; start += 32) {
    const T = Math.min(32, 70 - start);
    const chunk = new Float32Array(T * H * D);
    method.prefill({ layer: 0, shape, queries: data.queries.subarray(start * H * D), numQueries: T, queryStart: start, cache: cacheOf(data, start + T), out: chunk, isLastChunk: start + T === 70 });
    out.set(chunk, start * H * D);
  }
  const ref = maskedReference(data, (_h, q, k) => k <= q && k > q - window);
  assert.ok(maxAbsDiff(out, ref.out) < 1e-5);
});
