/**
 * Decode methods: Quest's bound and page choice, SnapKV / Ada-SnapKV eviction, sink + local eviction,
 * each checked against rules recomputed here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { QuestDecode, QuestPageBounds, pageUpperBound } from '../../src/methods/quest.js';
import { SnapKvDecode } from '../../src/methods/snapkv.js';
import { AdaSnapKvDecode } from '../../src/methods/ada-snapkv.js';
import { SinkLocalDecode } from '../../src/methods/sink-local.js';
import { createAttentionPlan } from '../../src/methods/index.js';
import type { SnapKvSettings } from '../../src/methods/snapkv-importance.js';
import { DenseDecode } from '../../src/methods/dense.js';
import { achievedSparsity, cacheOf, causalSoftmaxRow, maxAbsDiff, randomArray, rng, runDecode, synthetic, type Synthetic } from './helpers.js';

test('Quest: the page bound is never below the true q.k of any key in the page (property)', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 8 }),
    fc.integer({ min: 1, max: 40 }),
    fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    (D, rows, seed) => {
      const r = rng(seed);
      const cache = new LayerKvCache(1, D, rows);
      cache.append(randomArray(rows * D, r, 3), randomArray(rows * D, r), rows, 0);
      const bounds = new QuestPageBounds(1, D, 16);
      // Extend in two steps, as decoding appends.
      bounds.extend(cache, Math.ceil(rows / 2));
      bounds.extend(cache, rows);
      const q = randomArray(D, r, 3);
      for (let k = 0; k < rows; k++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[d] * cache.keys[0][k * D + d];
        const page = Math.floor(k / 16);
        const bound = pageUpperBound(q, 0, bounds.pageMin[0], bounds.pageMax[0], page * D, D);
        if (bound < dot - 1e-9) return false;
      }
      return true;
    },
  ), { numRuns: 300 });
});

/** Brute-force Quest step: page bounds from the cache, top k pages by (group-summed) bound. */
function referenceQuestPages(data: Synthetic, cache: LayerKvCache, query: Float32Array, position: number, k: number, share: boolean): Set<number>[] {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = data.shape;
  const g = H / Hkv, P = 16, current = Math.floor(position / P);
  const bound = (h: number, page: number) => {
    const kvh = Math.floor(h / g);
    let s = 0;
    for (let d = 0; d < D; d++) {
      let mn = Infinity, mx = -Infinity;
      for (let r = page * P; r < page * P + P; r++) {
        mn = Math.min(mn, cache.keys[kvh][r * D + d]);
        mx = Math.max(mx, cache.keys[kvh][r * D + d]);
      }
      s += Math.max(query[h * D + d] * mn, query[h * D + d] * mx);
    }
    return s;
  };
  return Array.from({ length: H }, (_, h) => {
    const heads = share ? Array.from({ length: g }, (_, j) => Math.floor(h / g) * g + j) : [h];
    const scores = Array.from({ length: current }, (_, page) => heads.reduce((a, hh) => a + bound(hh, page), 0));
    const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
    const rows = new Set<number>();
    for (const page of order.slice(0, k)) for (let r = page * P; r < page * P + P; r++) rows.add(r);
    for (let r = current * P; r <= position; r++) rows.add(r);
    return rows;
  });
}

function maskedDecode(data: Synthetic, cache: LayerKvCache, query: Float32Array, rows: Set<number>[]): Float32Array {
  const { numHeads: H, numKvHeads: Hkv, headDim: D, scale } = data.shape;
  const out = new Float32Array(H * D);
  for (let h = 0; h < H; h++) {
    const kvh = Math.floor(h / (H / Hkv));
    const list = [...rows[h]];
    const s = list.map((r) => {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += query[h * D + d] * cache.keys[kvh][r * D + d];
      return dot * scale;
    });
    const max = Math.max(...s);
    const e = s.map((x) => Math.exp(x - max));
    const sum = e.reduce((a, b) => a + b, 0);
    for (let d = 0; d < D; d++) out[h * D + d] = list.reduce((a, r, i) => a + e[i] * cache.values[kvh][r * D + d], 0) / sum;
  }
  return out;
}

test('Quest: decode equals masked attention over the brute-force page choice (shared and per head)', () => {
  for (const share of [true, false]) {
    const data = synthetic(300, 4, 2, 8, share ? 1 : 2);
    const method = new QuestDecode(16, 0.7, null, share);
    const cache = cacheOf(data);
    const r = rng(4);
    for (let step = 0; step < 12; step++) {
      const position = data.n + step;
      cache.append(randomArray(2 * 8, r), randomArray(2 * 8, r), 1, position);
      const query = randomArray(4 * 8, r);
      const out = new Float32Array(4 * 8);
      const counts = method.decode({ layer: 0, shape: data.shape, query, position, cache, out });
      const k = method.lastDecisions.get(0)!.counts.pages as number;
      assert.equal(k, Math.round((0.3 * (position + 1) - (position % 16 + 1)) / 16));
      const rows = referenceQuestPages(data, cache, query, position, k, share);
      assert.ok(maxAbsDiff(out, maskedDecode(data, cache, query, rows)) < 1e-5, `share=${share} step ${step}`);
      assert.deepEqual(Array.from(counts.attended), rows.map((s) => s.size));
    }
  }
});

test('Quest: a planted page that matches the query is chosen; the original token budget is honoured', () => {
  const data = synthetic(320, 2, 1, 8, 9, 0.2);
  for (let r = 80; r < 96; r++) data.keys[r * 8] = 5; // page 5
  const cache = cacheOf(data);
  const method = new QuestDecode(16, null, 32, true);
  const query = new Float32Array(2 * 8);
  query[0] = 2;
  query[8] = 2;
  const bounds = new QuestPageBounds(1, 8, 16);
  bounds.extend(cache, 320);
  const chosen = method.choosePages(query, 0, 2, 8, bounds, 0, 20, 1);
  assert.equal(chosen[0], 5);
  cache.append(new Float32Array(8), new Float32Array(8), 1, 320);
  const counts = method.decode({ layer: 0, shape: data.shape, query, position: 320, cache, out: new Float32Array(16) });
  // tokenBudget 32 = 2 pages, plus the current page holding only the new token.
  assert.deepEqual(Array.from(counts.attended), [33, 33]);
});

const snapSettings = (over: Partial<SnapKvSettings> = {}): SnapKvSettings => ({
  observationWindow: 64, kernelSize: 5, localWindow: 16, prefixTokens: 4, sparsity: null, tokenCapacity: 60, ...over,
});

/** Brute-force SnapKV importance of one KV head ('mean' over group, summed over the window). */
function referenceImportance(data: Synthetic, kvh: number, W: number, mode: 'mean' | 'max'): number[] {
  const { n, shape } = data;
  const g = shape.numHeads / shape.numKvHeads;
  const imp = new Array<number>(n).fill(0);
  for (let j = 0; j < g; j++) {
    const h = kvh * g + j;
    for (let q = n - W; q < n; q++) {
      causalSoftmaxRow(data, h, q).forEach((p, k) => { imp[k] = mode === 'mean' ? imp[k] + p / g : Math.max(imp[k], p); });
    }
  }
  return imp;
}

function pooledForced(imp: number[], K: number, settings: SnapKvSettings): number[] {
  const n = imp.length, half = Math.floor(K / 2);
  const pooled = imp.map((_, j) => {
    let s = 0;
    for (let t = j - half; t <= j + half; t++) if (t >= 0 && t < n) s += imp[t];
    return s / K;
  });
  for (let j = Math.max(0, n - settings.localWindow); j < n; j++) pooled[j] = Infinity;
  for (let j = 0; j < Math.min(n, settings.prefixTokens); j++) pooled[j] = Infinity;
  return pooled;
}

function compress(method: SnapKvDecode | AdaSnapKvDecode, data: Synthetic): LayerKvCache {
  const cache = cacheOf(data);
  const { numHeads: H, headDim: D } = data.shape;
  const W = Math.min(method.observationWindow, data.n);
  method.afterPrefill({ layer: 0, shape: data.shape, windowQueries: data.queries.subarray((data.n - W) * H * D), windowLength: W, windowStart: data.n - W, cache });
  return cache;
}

test('SnapKV keeps, per KV head, the top-capacity pooled tokens including prefix and local window', () => {
  const data = synthetic(400, 4, 2, 8, 12);
  const settings = snapSettings();
  const cache = compress(new SnapKvDecode(settings), data);
  for (let kvh = 0; kvh < 2; kvh++) {
    const scores = pooledForced(referenceImportance(data, kvh, 64, 'mean'), 5, settings);
    const want = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b).slice(0, 60).sort((a, b) => a - b);
    assert.equal(cache.lengths[kvh], 60);
    assert.deepEqual(Array.from(cache.positions[kvh].subarray(0, 60)), want);
    for (let p = 0; p < 4; p++) assert.ok(want.includes(p), 'prefix kept');
    for (let p = 400 - 16; p < 400; p++) assert.ok(want.includes(p), 'local window kept');
  }
});

test('SnapKV with the local window as wide as the observation window keeps the whole window', () => {
  const data = synthetic(300, 2, 1, 8, 13);
  const cache = compress(new SnapKvDecode(snapSettings({ localWindow: 64, tokenCapacity: 100 })), data);
  const kept = new Set(cache.positions[0].subarray(0, cache.lengths[0]));
  for (let p = 300 - 64; p < 300; p++) assert.ok(kept.has(p));
});

test('SnapKV: a planted key that the window attends survives eviction; decoding reads kept + new tokens', () => {
  const data = synthetic(500, 2, 1, 8, 14, 0.3);
  for (let q = 0; q < 500; q++) for (let h = 0; h < 2; h++) data.queries[(q * 2 + h) * 8] += 3;
  data.keys[200 * 8] = 5;
  const method = new SnapKvDecode(snapSettings({ tokenCapacity: 30 }));
  const run = runDecode(method, data, 3, 5);
  assert.ok(Array.from(run.cache.positions[0].subarray(0, 30)).includes(200));
  assert.deepEqual(run.counts.map((c) => c.attended[0]), [31, 32, 33]);
  assert.equal(run.cache.lengths[0], 33);
});

test('Ada-SnapKV: per-head counts differ, sum to the layer budget, and respect the per-head minimum', () => {
  const data = synthetic(600, 8, 4, 8, 15, 1.5);
  const settings = snapSettings({ tokenCapacity: 100 });
  const cache = compress(new AdaSnapKvDecode(settings, 0.2), data);
  const lengths = cache.lengths.slice();
  assert.equal(lengths.reduce((a, b) => a + b, 0), 4 * 100);
  assert.ok(new Set(lengths).size > 1, `counts ${lengths}`);
  for (const len of lengths) assert.ok(len >= 20, 'per-head minimum: max(0.2 x 100, 4 + 16)');
  // The forced tokens are in every head; the kept rows are the top scores of the rule.
  const scores = [0, 1, 2, 3].map((kvh) => pooledForced(referenceImportance(data, kvh, 64, 'max'), 5, settings));
  for (let kvh = 0; kvh < 4; kvh++) {
    const kept = new Set(cache.positions[kvh].subarray(0, lengths[kvh]));
    for (let p = 0; p < 4; p++) assert.ok(kept.has(p));
    for (let p = 600 - 16; p < 600; p++) assert.ok(kept.has(p));
    // Every evicted token scores no higher than the lowest token kept beyond the per-head minimum.
    const minKept = Math.min(...[...kept].map((p) => scores[kvh][p]));
    for (let p = 0; p < 600; p++) if (!kept.has(p)) assert.ok(scores[kvh][p] <= minKept + 1e-12);
  }
});

test('sink + local decode: evicting gives the same outputs as reading the window from a full cache', () => {
  const data = synthetic(250, 4, 2, 8, 16);
  const evicting = runDecode(new SinkLocalDecode({ sinkTokens: 4, localWindow: null, sparsity: 0.8 }, true), data, 30, 6);
  const full = runDecode(new SinkLocalDecode({ sinkTokens: 4, localWindow: null, sparsity: 0.8 }, false), data, 30, 6);
  for (let step = 0; step < 30; step++) {
    assert.ok(maxAbsDiff(evicting.outs[step], full.outs[step]) < 1e-6);
    assert.deepEqual(Array.from(evicting.counts[step].attended), Array.from(full.counts[step].attended));
    assert.ok(Math.abs(achievedSparsity(evicting.counts[step]) - 0.8) < 1 / (data.n + step));
  }
  assert.ok(evicting.cache.lengths[0] < full.cache.lengths[0]);
  assert.equal(evicting.cache.lengths[0], evicting.counts[29].attended[0]);
});

test('decode methods at a budget covering everything equal dense decoding', () => {
  const data = synthetic(260, 4, 2, 8, 17);
  const dense = runDecode(new DenseDecode(), data, 5, 2);
  for (const [id, params] of [['quest', { tokenBudget: 4096 }], ['snapkv', { tokenCapacity: 260 }], ['ada_snapkv', { tokenCapacity: 500 }], ['sink_local_decode', { localWindow: 10000 }]] as const) {
    const run = runDecode(createAttentionPlan(id, { params }).decode, data, 5, 2);
    for (let step = 0; step < 5; step++) assert.ok(maxAbsDiff(run.outs[step], dense.outs[step]) < 1e-5, id);
  }
});
