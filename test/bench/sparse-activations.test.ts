/**
 * bench/sparse-activations.ts's host side, without a GPU: the block-sparse product-union count
 * (against a per-query recount through the layout's own selectedKeysOf) and the automatic tiling's
 * steps (against the kernel's step lists), the attention recorder with a fake device and a fake inner
 * attention, the per-case summary and table order (sparse-activations-report.ts), the head
 * replication matrix, and the arguments.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type CapturedLayer, type RecorderDevice, RecordingDeviceAttention } from '../../bench/attention-recorder.js';
import { autoTilingWork, productUnionCount, unionFactor } from '../../bench/block-sparse-product-union.js';
import { parseSparseActivationsArgs, replicationMatrix } from '../../bench/sparse-activations.js';
import { type CaseSummary, type LayerResult, sideBySide, summarizeCase, summaryTable } from '../../bench/sparse-activations-report.js';
import { mulberry32 } from '../../bench/seeded-random.js';
import { type ChunkLists, selectedKeysOf, selectionFromLists } from '../../src/backends/cuda/block-sparse-layout.js';
import { wgmmaComputedSteps, wgmmaCtaSteps, wgmmaStepGeometry } from '../../src/backends/cuda/block-sparse-wgmma-layout.js';
import type { DeviceAttention, DeviceAttentionCall } from '../../src/backends/cuda/device-attention.js';
import type { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import type { DeviceBuffer } from '../../src/backends/cuda/memory-pool.js';

/** Lists [H, B, stride] from per-(head, chunk) key-chunk sets (each sorted ascending here). */
function listsOf(n: number, c: number, perHead: number[][][]): ChunkLists {
  const H = perHead.length, B = Math.ceil(n / c);
  const stride = Math.max(1, ...perHead.flat().map((s) => s.length));
  const lists = new Int32Array(H * B * stride), counts = new Int32Array(H * B);
  perHead.forEach((chunks, h) => {
    assert.equal(chunks.length, B);
    chunks.forEach((set, m) => {
      const sorted = [...set].sort((a, b) => a - b);
      sorted.forEach((j, i) => { lists[(h * B + m) * stride + i] = j; });
      counts[h * B + m] = sorted.length;
    });
  });
  return { numHeads: H, numTokens: n, chunkSize: c, numChunks: B, stride, lists, counts };
}

/** Every key chunk 0..m for every chunk m: dense. */
function denseChunks(B: number): number[][] {
  return Array.from({ length: B }, (_, m) => Array.from({ length: m + 1 }, (_, j) => j));
}

/** The union recounted per query row from the keys each row attends (an independent path). */
function recount(l: ChunkLists, productRows: number): { computed: number; attended: number } {
  const sel = selectionFromLists(l);
  let computed = 0, attended = 0;
  for (let h = 0; h < l.numHeads; h++) {
    for (let first = 0; first < l.numTokens; first += productRows) {
      const chunks = new Set<number>();
      for (let q = first; q < Math.min(l.numTokens, first + productRows); q++) {
        const keys = selectedKeysOf(sel, h, q);
        attended += keys.length;
        for (const k of keys) chunks.add(Math.floor(k / l.chunkSize));
      }
      computed += chunks.size * productRows * l.chunkSize;
    }
  }
  return { computed, attended };
}

describe('block-sparse product union', () => {
  test('dense lists: each 64-row product computes every chunk up to its last row, masked cells included', () => {
    const l = listsOf(128, 16, [denseChunks(8)]);
    const c = productUnionCount(l);
    // Products of rows 0-63 (chunks 0..3) and 64-127 (chunks 0..7): (4 + 8)·64·16 computed, 128·129/2 attended.
    assert.deepEqual(c, { computedPairs: 12 * 64 * 16, attendedPairs: (128 * 129) / 2 });
    assert.ok(Math.abs(unionFactor(c) - 12288 / 8256) < 1e-12);
  });

  test('chunks of a product choosing alike cost one list; choosing apart cost up to 4 lists', () => {
    const n = 256, B = 16;
    // Chunks 12..15 (one product) each keep chunk 0 and their own diagonal; alike: they also share chunk 5.
    const alike = denseChunks(B).map((_, m) => (m >= 12 ? [0, 5, m] : [0, m]));
    const apart = denseChunks(B).map((_, m) => (m >= 12 ? [0, m - 12 + 1, m] : [0, m]));
    const a = productUnionCount(listsOf(n, 16, [alike])), b = productUnionCount(listsOf(n, 16, [apart]));
    assert.equal(a.attendedPairs, b.attendedPairs, 'same pair count: only the choice differs');
    // Last product: alike {0, 5, 12..15} = 6 chunks, apart {0, 1..4, 12..15} = 9 chunks.
    assert.equal(b.computedPairs - a.computedPairs, 3 * 64 * 16);
  });

  test('random lists (several heads, a partial last chunk) agree with a per-query recount, at 64 and 128 rows', () => {
    const rand = mulberry32(7);
    for (const n of [1000, 1024, 333]) {
      const B = Math.ceil(n / 16);
      const heads = [0, 1, 2].map(() => Array.from({ length: B }, (_, m) => {
        const set = new Set<number>([0, m, Math.max(0, m - 1)]);
        for (let i = 0; i < 3; i++) set.add(Math.floor(rand() * (m + 1)));
        return [...set];
      }));
      const l = listsOf(n, 16, heads);
      for (const rows of [64, 128]) {
        const c = productUnionCount(l, rows), r = recount(l, rows);
        assert.equal(c.computedPairs, r.computed, `n=${n} rows=${rows} computed`);
        assert.equal(c.attendedPairs, r.attended, `n=${n} rows=${rows} attended`);
        assert.ok(unionFactor(c) > 1 && unionFactor(c) <= (rows / 16) * 2.5, `n=${n} rows=${rows}: factor ${unionFactor(c)}`);
      }
    }
  });

  test('automatic tiling: chosen by list density, steps equal to the kernel\'s own step lists (host reference)', () => {
    const rand = mulberry32(11);
    const n = 2000, B = Math.ceil(n / 16);
    const listsWith = (extra: number) => listsOf(n, 16, [0, 1].map(() => Array.from({ length: B }, (_, m) => {
      const set = new Set<number>([0, m, Math.max(0, m - 1)]);
      for (let i = 0; i < extra; i++) set.add(Math.floor(rand() * (m + 1)));
      return [...set];
    })));
    for (const [extra, tiling, consumers, blockN] of [[8, 'c3-n64-s3', 3, 64], [60, 'n128-s2', 2, 128]] as const) {
      const l = listsWith(extra);
      const w = autoTilingWork(l, 132);
      assert.equal(w.tiling, tiling, `stride ${l.stride} of ${B} chunks`);
      const geo = wgmmaStepGeometry(n, 2, l.stride, 16, blockN, consumers);
      let steps = 0;
      for (let h = 0; h < 2; h++) {
        for (let cr = 0; cr < geo.numCtaRows; cr++) steps += wgmmaComputedSteps(wgmmaCtaSteps(l, n, geo, h, cr), geo.subTiles, consumers).reduce((a, b) => a + b, 0);
      }
      assert.equal(w.computedPairs, steps * 64 * blockN);
      assert.equal(w.attendedPairs, productUnionCount(l).attendedPairs);
      // Steps carry whole blockN-key groups: never less work than the 16-key union of the same rows.
      assert.ok(w.computedPairs >= productUnionCount(l).computedPairs, `${tiling}: ${w.computedPairs} >= 64-row union`);
    }
  });

  test('bad product sizes and out-of-range chunks are refused by name', () => {
    const l = listsOf(128, 16, [denseChunks(8)]);
    assert.throws(() => productUnionCount(l, 40), /product rows 40 must be a positive multiple of the chunk size 16/);
    const bad = { ...l, lists: l.lists.slice() };
    bad.lists[(7 * l.stride)] = 9;
    assert.throws(() => productUnionCount(bad), /head 0 chunk 7 lists key chunk 9, outside 0..7/);
    assert.ok(Number.isNaN(unionFactor()));
  });
});

/** A fake device: bump-allocated pointers, a log of copies and releases, caches as plain objects. */
function fakeDevice() {
  let next = 0x1000n;
  const copies: { dst: bigint; src: bigint; bytes: number }[] = [];
  const released: bigint[] = [];
  const buffer = (bytes: number): DeviceBuffer => {
    const b = { ptr: next, bytes, capacity: bytes };
    next += BigInt(bytes) + 0x100n;
    return b;
  };
  const device: RecorderDevice = {
    acquire: buffer,
    release: (b) => { released.push(b.ptr); },
    copy: (dst, src, bytes) => { copies.push({ dst, src, bytes }); },
    newCache: (numKvHeads, headDim, capacity) => {
      const bytes = numKvHeads * headDim * capacity * 2;
      const cache = { numKvHeads, headDim, capacity, length: 0, keys: buffer(bytes), values: buffer(bytes), release: () => { released.push(cache.keys.ptr, cache.values.ptr); } };
      return cache as unknown as DeviceLayerKvCache;
    },
  };
  return { device, copies, released };
}

function modelCache(Hkv: number, D: number, capacity: number, length: number, base: bigint): DeviceLayerKvCache {
  const bytes = BigInt(Hkv * D * capacity * 2);
  return { numKvHeads: Hkv, headDim: D, capacity, length, keys: { ptr: base, bytes: Number(bytes), capacity: Number(bytes) }, values: { ptr: base + bytes, bytes: Number(bytes), capacity: Number(bytes) } } as unknown as DeviceLayerKvCache;
}

describe('attention recorder', () => {
  const H = 4, Hkv = 2, D = 64, qkvStride = (H + 2 * Hkv) * D;
  const call = (layer: number, sliding: boolean, n: number, queryStart = 0): DeviceAttentionCall => ({
    layer, sliding, q: 0x9000_0000n + BigInt(layer) * 0x100_0000n, qRowStride: qkvStride, numQueries: n, queryStart,
    cache: modelCache(Hkv, D, 512, queryStart + n, 0xa000_0000n + BigInt(layer) * 0x100_0000n), out: 0xb000_0000n,
  });
  const innerOf = () => {
    const seen: number[] = [];
    const inner: DeviceAttention = { id: 'dense', attend: (c) => { seen.push(c.layer); } };
    return { inner, seen };
  };

  test('armed: copies each full layer\'s q rows and whole K/V cache, skips sliding layers, always runs the inner attention', () => {
    const { device, copies } = fakeDevice();
    const { inner, seen } = innerOf();
    const rec = new RecordingDeviceAttention(inner, device);
    assert.equal(rec.id, 'recording(dense)');
    rec.attend(call(0, false, 300)); // not armed: passes through
    assert.equal(copies.length, 0);
    rec.arm();
    const calls = [call(0, false, 300), call(1, true, 300), call(2, false, 300)];
    for (const c of calls) rec.attend(c);
    assert.deepEqual(seen, [0, 0, 1, 2]);
    const got: CapturedLayer[] = rec.take();
    assert.deepEqual(got.map((l) => l.layer), [0, 2]);
    const cacheBytes = Hkv * 512 * D * 2;
    got.forEach((l, i) => {
      const c = calls[i === 0 ? 0 : 2];
      assert.equal(l.numQueries, 300);
      assert.equal(l.qRowStride, qkvStride);
      assert.equal(l.cache.length, 300);
      assert.equal(l.cache.capacity, 512);
      assert.deepEqual(copies.slice(3 * i, 3 * i + 3), [
        { dst: l.q.ptr, src: c.q, bytes: 300 * qkvStride * 2 },
        { dst: l.cache.keys.ptr, src: c.cache.keys.ptr, bytes: cacheBytes },
        { dst: l.cache.values.ptr, src: c.cache.values.ptr, bytes: cacheBytes },
      ]);
    });
    // take() disarms: the next prompt passes through until armed again.
    rec.attend(call(0, false, 300));
    assert.equal(copies.length, 6);
  });

  test('refuses a chunk that is not the whole prompt, and a layer recorded twice', () => {
    const { device } = fakeDevice();
    const rec = new RecordingDeviceAttention(innerOf().inner, device);
    rec.arm();
    assert.throws(() => rec.attend(call(3, false, 100, 200)), /layer 3 got queries 200..300 of a 300-row cache; record a whole prompt in one call/);
    rec.attend(call(1, false, 100));
    assert.throws(() => rec.attend(call(1, false, 100)), /layer 1 recorded twice/);
    assert.throws(() => rec.arm(), /already armed/);
  });

  test('releaseAll gives back every recorded buffer', () => {
    const { device, released } = fakeDevice();
    const rec = new RecordingDeviceAttention(innerOf().inner, device);
    rec.arm();
    rec.attend(call(0, false, 64));
    rec.attend(call(1, false, 64));
    const got = rec.take();
    rec.releaseAll(got);
    const expected = got.flatMap((l) => [l.q.ptr, l.cache.keys.ptr, l.cache.values.ptr]).sort();
    assert.deepEqual([...released].sort(), expected);
  });
});

describe('summary', () => {
  const layer = (example: number, l: number, a: number, d: number, att: number, den: number, est: number | null): LayerResult => ({
    example, layer: l, n: 100, attended: a, dense: d, estimationMs: est, attentionMs: att, denseMs: den, union: null, tiling: null,
  });
  const key = { data: 'activations' as const, task: 'niah', n: 4096, method: 'vertical_and_slash', s: 0.9 };

  test('sums over layers, means over examples, ratios from the sums, spreads from the cells', () => {
    const rows = [layer(0, 0, 10, 100, 1, 4, 0.5), layer(0, 1, 30, 100, 2, 4, 0.5), layer(1, 0, 20, 100, 1, 2, 0.25), layer(1, 1, 20, 100, 1, 2, 0.25)];
    const s = summarizeCase(key, [4000, 4010], rows);
    assert.equal(s.examples, 2);
    assert.equal(s.layers, 2);
    assert.ok(Math.abs(s.achieved - 0.8) < 1e-12); // 80 of 400
    assert.equal(s.achievedMin, 0.7);
    assert.equal(s.achievedMax, 0.9);
    assert.equal(s.attentionMs, 2.5); // (3 + 2) / 2
    assert.equal(s.denseMs, 6); // (8 + 4) / 2
    assert.equal(s.estimationMs, 0.75); // (1 + 0.5) / 2
    assert.ok(Math.abs(s.ratioAchieved - 5 / (0.2 * 12)) < 1e-12);
    // Cells: 1/(0.1·4) = 2.5, 2/(0.3·4) = 1.667, 1/(0.2·2) = 2.5, 2.5.
    assert.ok(Math.abs(s.ratioMin - 2 / 1.2) < 1e-12);
    assert.ok(Math.abs(s.ratioMax - 2.5) < 1e-12);
    assert.equal(s.unionFactor, null);
    assert.deepEqual(s.lengths, [4000, 4010]);
  });

  test('no estimation stays null; a union factor adds counts up; mixed estimation and no results are refused', () => {
    const u = (c: number, a: number) => ({ ...layer(0, 0, a, 100, 1, 1, null), union: { computedPairs: c, attendedPairs: a } });
    const t = (c: number, a: number, tiling: 'n128-s2' | 'c3-n64-s3') => ({ ...u(c, a), tiling: { tiling, computedPairs: 2 * c, attendedPairs: a } });
    const s = summarizeCase({ ...key, method: 'block_sparse' }, [], [t(30, 10, 'n128-s2'), { ...t(10, 10, 'c3-n64-s3'), layer: 1 }]);
    assert.equal(s.estimationMs, null);
    assert.equal(s.unionFactor, 2);
    assert.equal(s.tilingFactor, 4);
    assert.deepEqual(s.tilings, ['n128-s2', 'c3-n64-s3']);
    assert.match(summaryTable([s]), /\| 2\.00, 4\.00 \(n128-s2 \+ c3-n64-s3\) \|$/);
    assert.throws(() => summarizeCase(key, [], [layer(0, 0, 1, 2, 1, 1, 0.1), layer(0, 1, 1, 2, 1, 1, null)]), /1 of 2 layer calls timed an estimation/);
    assert.throws(() => summarizeCase(key, [], []), /no layer results/);
  });

  test('table rows read side by side: per n, method, s; the tasks, then replicated, then random', () => {
    const row = (data: CaseSummary['data'], task: string, n: number, method: string, s: number): CaseSummary => ({
      ...summarizeCase({ data, task, n, method, s }, [n], [layer(0, 0, 1, 2, 1, 1, null)]),
    });
    const rows = [
      row('random', 'random', 4096, 'block_sparse', 0.5), row('activations', 'vt', 4096, 'block_sparse', 0.5),
      row('activations', 'niah', 4096, 'block_sparse', 0.5), row('replicated x8', 'niah', 4096, 'block_sparse', 0.5),
      row('activations', 'niah', 4096, 'vertical_and_slash', 0.9), row('activations', 'niah', 1024, 'block_sparse', 0.9),
      row('activations', 'niah', 4096, 'block_sparse', 0.9),
    ];
    rows.sort(sideBySide(['vertical_and_slash', 'block_sparse'], ['niah', 'vt']));
    assert.deepEqual(rows.map((r) => `${r.n} ${r.method} ${r.s} ${r.data} ${r.task}`), [
      '1024 block_sparse 0.9 activations niah',
      '4096 vertical_and_slash 0.9 activations niah',
      '4096 block_sparse 0.5 activations niah',
      '4096 block_sparse 0.5 activations vt',
      '4096 block_sparse 0.5 replicated x8 niah',
      '4096 block_sparse 0.5 random random',
      '4096 block_sparse 0.9 activations niah',
    ]);
    const table = summaryTable(rows).split('\n');
    assert.equal(table.length, rows.length + 2);
    assert.match(table[2], /^\| activations \| niah \| 1024 \| block_sparse \| 0\.9 \| 0\.500 \(0\.500–0\.500\) \| - \|/);
  });
});

describe('arguments', () => {
  test('defaults and overrides', () => {
    const d = parseSparseActivationsArgs([]);
    assert.deepEqual(d.lengths, [4096, 8192, 16384]);
    assert.deepEqual(d.tasks, ['niah', 'vt', 'story_retrieval', 'cwe']);
    assert.equal(d.random, true);
    assert.equal(d.replicate, 1);
    assert.equal(d.repeats, 5);
    assert.equal(d.warmupS, 1.5);
    assert.equal(parseSparseActivationsArgs(['--warmup', '0']).warmupS, 0);
    const o = parseSparseActivationsArgs(['--tasks', 'niah,story_retrieval', '--lengths', '16384,4096', '--sparsities', '0.5,0.9', '--no-random', '--replicate', '8', '--examples', '1']);
    assert.deepEqual(o.lengths, [16384, 4096]);
    assert.deepEqual(o.sparsities, [0.5, 0.9]);
    assert.equal(o.random, false);
    assert.equal(o.replicate, 8);
    assert.equal(o.examples, 1);
  });

  test('bad values are refused by name', () => {
    assert.throws(() => parseSparseActivationsArgs(['--tasks', 'nope']), /unknown task "nope"/);
    assert.throws(() => parseSparseActivationsArgs(['--lengths', '512']), /--lengths: bad length/);
    assert.throws(() => parseSparseActivationsArgs(['--sparsities', '1']), /--sparsities: bad sparsity \(in \[0, 1\)\) "1"/);
    assert.throws(() => parseSparseActivationsArgs(['--replicate', '0']), /--replicate: bad replication factor/);
    assert.throws(() => parseSparseActivationsArgs(['--warmup', '-1']), /--warmup: bad number of seconds/);
    assert.throws(() => parseSparseActivationsArgs(['--frobnicate']), /unknown argument --frobnicate/);
    assert.throws(() => parseSparseActivationsArgs(['--examples']), /--examples needs a value/);
  });
});

describe('head replication', () => {
  test('X·Wᵀ with the selection matrix repeats the queries of each fused row r times, copy j\'s head h at j·H + h', () => {
    const H = 4, Hkv = 2, D = 8, r = 3, K = (H + 2 * Hkv) * D, n = 5;
    const w = replicationMatrix(H, D, r, K);
    const x = Float64Array.from({ length: n * K }, (_, i) => (i * 7919) % 1009 - 500); // distinct values, K and V columns included
    for (let t = 0; t < n; t++) {
      for (let o = 0; o < H * r * D; o++) {
        let y = 0, ones = 0;
        for (let i = 0; i < K; i++) {
          if (w[o * K + i] === 0) continue;
          assert.equal(w[o * K + i], 0x3f80, 'bf16 1.0');
          ones++;
          y += x[t * K + i];
        }
        assert.equal(ones, 1, `row ${o}: one 1`);
        const j = Math.floor(o / (H * D)), h = Math.floor((o % (H * D)) / D), d = o % D;
        assert.equal(y, x[t * K + h * D + d], `token ${t}: copy ${j} head ${h} dim ${d}`);
      }
    }
    // Query head j·H + h of the replicated layer reads KV head j·Hkv + ⌊h / g⌋: copy j's own.
    const g = H / Hkv;
    for (let j = 0; j < r; j++) for (let h = 0; h < H; h++) assert.equal(Math.floor((j * H + h) / g), j * Hkv + Math.floor(h / g));
  });

  test('refuses rows narrower than the queries', () => {
    assert.throws(() => replicationMatrix(4, 64, 8, 128), /K >= H·D \(got H 4, D 64, r 8, K 128\)/);
  });
});
