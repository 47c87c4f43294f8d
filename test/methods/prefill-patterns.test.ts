/**
 * Prefill methods against references written here from the rules (SPEC section 2): selections are
 * recomputed by brute force, turned into an explicit mask, and the method's output and pair counts
 * must match the masked dense attention.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VerticalSlashPrefill } from '../../src/methods/vertical-slash.js';
import { FlexPrefillPrefill } from '../../src/methods/flexprefill.js';
import { BlockSparsePrefill, closedFormSparsity, topChunksForSparsity } from '../../src/methods/block-sparse.js';
import { SinkLocalPrefill, sinkLocalPairs } from '../../src/methods/sink-local.js';
import { VerticalSlashBuilder, type VerticalSlashLayout } from '../../src/methods/vertical-slash-pattern.js';
import { type Synthetic, causalSoftmaxRow, maskedReference, maxAbsDiff, rng, runPrefill, synthetic } from './helpers.js';

/** The original index conversion, written as its loop (one 64-row block): block starts and columns. */
function referenceConvert(m: number, cols: number[], offs: number[]): { blocks: number[]; columns: number[] } {
  const B = 64, end = (m + 1) * B;
  const blocks: number[] = [], columns: number[] = [];
  const save = (a: number, b: number) => { for (let i = a; i < b; i += B) blocks.push(i); };
  let v = 0, s = 0;
  let vIdx = cols[v++];
  let sIdx = offs[s++];
  while (sIdx >= end) sIdx = offs[s++];
  sIdx = Math.max(end - sIdx, B);
  let rs = sIdx - B, re = sIdx;
  for (;;) {
    if (vIdx < re) {
      if (vIdx < rs) columns.push(vIdx);
      vIdx = v < cols.length ? cols[v++] : end + B;
    } else {
      if (s < offs.length) sIdx = Math.max(end - offs[s++], B);
      else {
        save(rs, re);
        break;
      }
      if (sIdx > re + B) {
        save(rs, re);
        rs = sIdx - B;
        re = sIdx;
      } else if (sIdx > re) re += B;
    }
  }
  return { blocks, columns };
}

/** Keys row r attends under the reference conversion. */
function referenceKeys(r: number, n: number, cols: number[], offs: number[]): Set<number> {
  const { blocks, columns } = referenceConvert(Math.floor(r / 64), cols, offs);
  const keys = new Set<number>();
  for (const b of blocks) for (let k = b; k < b + 64; k++) if (k <= r && k < n) keys.add(k);
  for (const c of columns) if (c <= r) keys.add(c);
  return keys;
}

function layoutKeys(layout: VerticalSlashLayout, r: number): Set<number> {
  const m = Math.floor(r / 64);
  const keys = new Set<number>();
  for (let i = layout.rangeStart[m]; i < layout.rangeStart[m + 1]; i++) {
    for (let k = layout.ranges[2 * i]; k < layout.ranges[2 * i + 1]; k++) if (k <= r) keys.add(k);
  }
  for (let i = layout.columnStart[m]; i < layout.columnStart[m + 1]; i++) keys.add(layout.columns[i]);
  return keys;
}

test('vertical-slash layout equals the original index conversion on random selections', () => {
  const r = rng(3);
  const builder = new VerticalSlashBuilder();
  for (let trial = 0; trial < 40; trial++) {
    const n = 65 + Math.floor(r() * 600);
    // Random ranks: forced items first (columns 0..3, offsets 0..63), the rest shuffled.
    const rankV = shuffledRanks(n, 4, r), rankS = shuffledRanks(n, 64, r);
    const kv = Math.min(n, 4 + Math.floor(r() * 40)), ks = Math.min(n, 64 + Math.floor(r() * 60));
    builder.select(n, rankV, kv, rankS, ks);
    const layout = builder.build(n);
    const cols: number[] = [], offs: number[] = [];
    for (let j = 0; j < n; j++) if (rankV[j] < kv) cols.push(j);
    for (let o = n - 1; o >= 0; o--) if (rankS[o] < ks) offs.push(o);
    let pairs = 0;
    for (let row = 0; row < n; row++) {
      const want = referenceKeys(row, n, cols, offs);
      const got = layoutKeys(layout, row);
      assert.deepEqual([...got].sort((a, b) => a - b), [...want].sort((a, b) => a - b), `trial ${trial} row ${row}`);
      pairs += want.size;
    }
    assert.equal(layout.pairs, pairs);
    assert.equal(builder.countPairs(n), pairs);
  }
});

function shuffledRanks(n: number, forced: number, r: () => number): Int32Array {
  const rest = Array.from({ length: n - Math.min(forced, n) }, (_, i) => i + forced);
  for (let i = rest.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [rest[i], rest[j]] = [rest[j], rest[i]];
  }
  const order = [...Array.from({ length: Math.min(forced, n) }, (_, i) => i), ...rest];
  const rank = new Int32Array(n);
  order.forEach((item, i) => { rank[item] = i; });
  return rank;
}

/** Brute-force last-query estimate of one head: column sums and diagonal sums. */
function referenceEstimate(data: Synthetic, h: number, A: number): { vertical: number[]; slash: number[] } {
  const { n } = data;
  const vertical = new Array<number>(n).fill(0), slash = new Array<number>(n).fill(0);
  for (let q = n - A; q < n; q++) {
    causalSoftmaxRow(data, h, q).forEach((p, k) => {
      vertical[k] += p;
      slash[q - k] += p;
    });
  }
  return { vertical, slash };
}

/** Top k with the first `forced` indices always in; ties by lower index. */
function topWithForced(scores: number[], forced: number, k: number): number[] {
  const idx = scores.map((_, i) => i).filter((i) => i >= forced);
  idx.sort((a, b) => scores[b] - scores[a] || a - b);
  return [...Array.from({ length: Math.min(forced, scores.length) }, (_, i) => i), ...idx].slice(0, k);
}

test('Vertical-Slash output and counts equal masked dense attention over the rule\'s selection', () => {
  const data = synthetic(300, 4, 2, 8, 21);
  const A = 40, kv = 12, ks = 70;
  const method = new VerticalSlashPrefill(A, null, kv, ks);
  const got = runPrefill(method, data);
  const allowed: Set<number>[][] = [];
  for (let h = 0; h < 4; h++) {
    const est = referenceEstimate(data, h, A);
    const cols = topWithForced(est.vertical, 4, kv).sort((a, b) => a - b);
    const offs = topWithForced(est.slash, 64, ks).sort((a, b) => b - a);
    allowed.push(Array.from({ length: data.n }, (_, r) => referenceKeys(r, data.n, cols, offs)));
  }
  const ref = maskedReference(data, (h, q, k) => allowed[h][q].has(k));
  assert.ok(maxAbsDiff(got.out, ref.out) < 1e-5);
  assert.deepEqual(Array.from(got.counts.attended), ref.pairs);
});

test('Block-Sparse output and counts equal masked dense attention over pooled top-t chunks', () => {
  for (const n of [200, 256]) {
    const data = synthetic(n, 4, 2, 8, 5 + n);
    const c = 16, t = 5;
    const got = runPrefill(new BlockSparsePrefill(c, null, t), data);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = data.shape;
    const B = Math.ceil(n / c);
    const pool = (src: Float32Array, heads: number, head: number) => Array.from({ length: B }, (_, m) => {
      const v = new Array<number>(D).fill(0);
      for (let r = m * c; r < Math.min(n, (m + 1) * c); r++) for (let d = 0; d < D; d++) v[d] += src[(r * heads + head) * D + d];
      return v.map((x) => x / c);
    });
    const selected: Set<number>[][] = [];
    for (let h = 0; h < H; h++) {
      const qp = pool(data.queries, H, h), kp = pool(data.keys, Hkv, Math.floor(h / (H / Hkv)));
      selected.push(qp.map((q, m) => {
        const scores = kp.slice(0, m + 1).map((k, j) => (j === 0 || j === m || j === m - 1 ? Infinity : q.reduce((a, x, d) => a + x * k[d], 0)));
        const order = scores.map((_, j) => j).sort((a, b) => scores[b] - scores[a] || a - b);
        return new Set(order.slice(0, t));
      }));
    }
    const ref = maskedReference(data, (h, q, k) => k <= q && selected[h][Math.floor(q / c)].has(Math.floor(k / c)));
    assert.ok(maxAbsDiff(got.out, ref.out) < 1e-5, `n=${n}`);
    assert.deepEqual(Array.from(got.counts.attended), ref.pairs);
  }
});

test('Block-Sparse: t from the closed form is the closest to the target (t >= 3)', () => {
  const B = Math.ceil(4096 / 16);
  for (const s of [0.5, 0.8, 0.9, 0.95, 0.99]) {
    const t = topChunksForSparsity(4096, 16, s);
    assert.ok(t >= 3);
    for (let other = 3; other <= B; other++) {
      assert.ok(Math.abs(closedFormSparsity(B, t) - s) <= Math.abs(closedFormSparsity(B, other) - s) + 1e-12);
    }
  }
});

test('sink + local prefill with a fixed window equals masked attention over sinks and window', () => {
  const data = synthetic(180, 2, 1, 8, 8);
  const got = runPrefill(new SinkLocalPrefill({ sinkTokens: 4, localWindow: 32, sparsity: null }), data);
  const ref = maskedReference(data, (_h, q, k) => k <= q && (k < 4 || k > q - 32));
  assert.ok(maxAbsDiff(got.out, ref.out) < 1e-5);
  assert.deepEqual(Array.from(got.counts.attended), ref.pairs);
});

/** Data where every query of every head attends strongly to the keys at `planted` positions. */
function planted(n: number, positions: number[], seed: number): Synthetic {
  const data = synthetic(n, 4, 2, 16, seed, 0.3);
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = data.shape;
  for (let q = 0; q < n; q++) for (let h = 0; h < H; h++) data.queries[(q * H + h) * D] += 3;
  for (const p of positions) for (let h = 0; h < Hkv; h++) data.keys[(p * Hkv + h) * D] = 4;
  return data;
}

test('a planted key that every query attends is selected as a column (Vertical-Slash, FlexPrefill)', () => {
  const j0 = 150;
  const data = planted(640, [j0], 31);
  // Small budgets: 8 columns (4 forced) and the 64 forced diagonals; FlexPrefill with a low alpha.
  const methods = [new VerticalSlashPrefill(64, null, 8, 64), new FlexPrefillPrefill(64, 8, null, 0.04)];
  for (const method of methods) {
    method.keepLayouts = true;
    runPrefill(method, data);
    for (const [h, layout] of method.lastLayouts.entries()) {
      for (let r = j0; r < data.n; r++) assert.ok(layoutKeys(layout, r).has(j0), `${method.id} head ${h} row ${r}`);
      // Row blocks far right of j0 reach it only through a column.
      for (let m = 5; m < layout.numBlocks; m++) {
        const cols = Array.from(layout.columns.subarray(layout.columnStart[m], layout.columnStart[m + 1]));
        assert.ok(cols.includes(j0), `${method.id} head ${h} block ${m}: ${cols}`);
      }
      assert.ok(layout.pairs < 0.5 * data.n * (data.n + 1) / 2, 'the budget stays small');
    }
  }
});

test('a planted key chunk is kept by every later query chunk (Block-Sparse)', () => {
  const data = planted(400, Array.from({ length: 16 }, (_, i) => 160 + i), 41);
  const method = new BlockSparsePrefill(16, null, 4);
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = data.shape;
  const B = Math.ceil(400 / 16);
  const keyPool = new Float64Array(B * D);
  for (let r = 0; r < 400; r++) for (let d = 0; d < D; d++) keyPool[Math.floor(r / 16) * D + d] += data.keys[(r * Hkv) * D + d] / 16;
  const selected = new Int32Array(B * 4), counts = new Int32Array(B);
  method.selectChunks(data.queries, 400, H, D, 0, keyPool, 4, selected, counts);
  for (let m = 13; m < B; m++) assert.ok(Array.from(selected.subarray(m * 4, m * 4 + counts[m])).includes(10), `chunk ${m}`);
});

test('FlexPrefill sizes follow the coverage rule: prefix sums <= alpha, plus one, at least min_budget', () => {
  const data = synthetic(500, 1, 1, 8, 61, 2);
  const A = 100;
  for (const [alpha, minBudget] of [[0.3, 4], [0.65, 16], [0.9, 64]] as const) {
    const method = new FlexPrefillPrefill(A, minBudget, null, alpha);
    runPrefill(method, data);
    const est = referenceEstimate(data, 0, A);
    const size = (scores: number[]) => {
      const sorted = scores.map((x) => x / A).sort((a, b) => b - a);
      let acc = 0, count = 0;
      for (const x of sorted) {
        acc += x;
        if (acc <= alpha) count++;
      }
      return Math.min(data.n, Math.max(minBudget, count + 1));
    };
    const counts = method.lastDecisions.get(0)!.counts;
    assert.equal(counts.meanVerticalSize, Math.max(4, size(est.vertical)), `alpha ${alpha}`);
    assert.equal(counts.meanSlashSize, Math.max(64, size(est.slash)), `alpha ${alpha}`);
  }
});

test('sinkLocalPairs counts what the sink + local prefill attends, whole prompt and from a chunk start', () => {
  const data = synthetic(300, 2, 1, 8, 9);
  for (const rule of [
    { sinkTokens: 4, localWindow: 32, sparsity: null }, { sinkTokens: 4, localWindow: null, sparsity: 0.9 },
    { sinkTokens: 0, localWindow: null, sparsity: 0.5 }, { sinkTokens: 70, localWindow: 10, sparsity: null },
  ]) {
    const got = runPrefill(new SinkLocalPrefill(rule), data);
    const pairs = sinkLocalPairs(rule, 0, data.n);
    assert.deepEqual(Array.from(got.counts.attended), [pairs.attended, pairs.attended], JSON.stringify(rule));
    assert.deepEqual(Array.from(got.counts.dense), [pairs.dense, pairs.dense]);
    const whole = sinkLocalPairs(rule, 0, 300), head = sinkLocalPairs(rule, 0, 123), tail = sinkLocalPairs(rule, 123, 177);
    assert.equal(head.attended + tail.attended, whole.attended);
    assert.equal(head.dense + tail.dense, whole.dense);
  }
});
