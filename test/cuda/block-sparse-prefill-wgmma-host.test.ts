/**
 * Host side of the wgmma block-sparse prefill (no GPU, so CI runs it): the step lists (host reference of
 * block_sparse_wgmma_steps) leave every query exactly its selected keys under the kernel's skip and mask
 * rules; their grouping by warpgroup; the tiling's labels, checks and shared-memory sizes; and a model
 * of the kernel's synchronisation (producer fills, mbarrier releases, the consumers' turn barriers,
 * skipped steps flushing the pending P·V) run under random schedules: it must always finish, and no
 * release may land in a fill's phase other than its own (the hang and the race a device run would show).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ChunkSelection, packChunkLists, selectedKeysOf } from '../../src/backends/cuda/block-sparse-layout.js';
import {
  WGMMA_CTA_ROWS, ctaTileMasksForSlots, groupedCtaWork, wgmmaAttendedKeys, wgmmaComputedSteps, wgmmaCtaSteps, wgmmaCtaTileMasks, wgmmaStepGeometry, wgmmaStepsBoth,
} from '../../src/backends/cuda/block-sparse-wgmma-layout.js';
import {
  DEFAULT_BLOCK_SPARSE_WGMMA_TILING, blockSparseWgmmaLabel, blockSparseWgmmaSharedBytes, parseBlockSparseWgmmaLabel,
  resolveBlockSparseWgmmaTiling,
} from '../../src/backends/cuda/kernels/block-sparse-prefill-wgmma.js';
import { AUTO_BLOCK_SPARSE_WGMMA_TILING, blockSparseKernelChoice } from '../../src/backends/cuda/kernels/block-sparse-prefill.js';
import { rng } from '../methods/helpers.js';

/** Random selection: each chunk keeps a random ascending subset of 0..m (some none, some all), or its
 * own diagonal and a few shared "heavy" chunks (mode 'shared'). */
function randomSelection(n: number, c: number, H: number, seed: number, mode: 'random' | 'shared' = 'random'): ChunkSelection {
  const r = rng(seed);
  const B = Math.ceil(n / c);
  const heavy = new Set(Array.from({ length: 4 }, () => Math.floor(r() * B)));
  const heads = Array.from({ length: H }, () => {
    const selected = new Int32Array(B * B), counts = new Int32Array(B);
    for (let m = 0; m < B; m++) {
      const kind = r();
      let k = 0;
      for (let j = 0; j <= m; j++) {
        const keep = mode === 'shared' ? heavy.has(j) || j === m || j === 0 : kind < 0.15 ? false : kind > 0.85 ? true : r() < 0.3;
        if (keep) selected[m * B + k++] = j;
      }
      counts[m] = k;
    }
    return { selected, counts, stride: B };
  });
  return { chunkSize: c, numTokens: n, heads };
}

describe('wgmma block-sparse step lists', () => {
  const cases = [
    { n: 1000, c: 16, H: 2, seed: 1, mode: 'random' as const },
    { n: 333, c: 16, H: 3, seed: 2, mode: 'random' as const }, // partial last chunk and CTA
    { n: 517, c: 32, H: 2, seed: 3, mode: 'random' as const }, // two tiles per chunk
    { n: 700, c: 64, H: 1, seed: 4, mode: 'random' as const }, // a chunk spans four slots
    { n: 1200, c: 16, H: 2, seed: 5, mode: 'shared' as const },
    { n: 90, c: 16, H: 2, seed: 6, mode: 'random' as const }, // one CTA
  ];
  for (const cs of cases) {
    for (const blockN of [64, 128] as const) {
      test(`n=${cs.n} c=${cs.c} ${cs.mode} blockN=${blockN}: each query attends exactly its selected keys`, () => {
        const sel = randomSelection(cs.n, cs.c, cs.H, cs.seed, cs.mode);
        const lists = packChunkLists(sel);
        const geo = wgmmaStepGeometry(cs.n, cs.H, lists.stride, cs.c, blockN);
        for (let h = 0; h < cs.H; h++) {
          for (let cr = 0; cr < geo.numCtaRows; cr++) {
            const entries = wgmmaCtaSteps(lists, cs.n, geo, h, cr);
            assert.ok(entries.length <= geo.stepStride, `CTA ${h}/${cr}: ${entries.length} entries over the stride ${geo.stepStride}`);
            assert.equal(entries.length % geo.subTiles, 0);
            const got = wgmmaAttendedKeys(entries, geo, cs.n, cs.n, cr);
            for (let qi = cr * WGMMA_CTA_ROWS; qi < Math.min(cs.n, (cr + 1) * WGMMA_CTA_ROWS); qi++) {
              assert.deepEqual(got.get(qi) ?? [], selectedKeysOf(sel, h, qi), `head ${h} query ${qi}`);
            }
          }
        }
      });
    }
  }

  test('tiles grouped by warpgroup: both first, then own steps alternating, each tile once, padding only at class ends', () => {
    const sel = randomSelection(2048, 16, 1, 7);
    const lists = packChunkLists(sel);
    const geo = wgmmaStepGeometry(2048, 1, lists.stride, 16, 64);
    let sawOwnSteps = false;
    for (let cr = 0; cr < geo.numCtaRows; cr++) {
      const masks = wgmmaCtaTileMasks(lists, 2048, 0, cr);
      const entries = wgmmaCtaSteps(lists, 2048, geo, 0, cr);
      const real = entries.filter((e) => e >>> 24 !== 0);
      assert.deepEqual(real.map((e) => e & 0xffffff).sort((a, b) => a - b), [...masks.keys()], `CTA ${cr}: every tile once`);
      const stepClass = (s: number): number[] => [...new Set(entries.slice(4 * s, 4 * s + 4).filter((e) => e >>> 24 !== 0)
        .map((e) => { const m = e >>> 24; return (m & 0xf) && (m & 0xf0) ? 0 : (m & 0xf) ? 1 : 2; }))];
      const classes = Array.from({ length: entries.length / 4 }, (_, s) => stepClass(s));
      for (const c of classes) assert.equal(c.length, 1, `CTA ${cr}: a step mixes classes ${c}`);
      const seq = classes.map((c) => c[0]);
      const firstOwn = seq.findIndex((c) => c !== 0);
      if (firstOwn >= 0) {
        assert.ok(seq.slice(firstOwn).every((c) => c !== 0), `CTA ${cr}: both-steps come first (${seq})`);
        const own = seq.slice(firstOwn);
        const n1 = own.filter((c) => c === 1).length, n2 = own.length - n1;
        const paired = Math.min(n1, n2);
        for (let i = 0; i < 2 * paired; i++) assert.equal(own[i], 1 + (i % 2), `CTA ${cr}: own steps alternate (${seq})`);
        sawOwnSteps ||= paired > 0;
      }
      // Padding (entry 0) only in the last step of a class.
      for (let s = 0; s < classes.length; s++) {
        const pads = entries.slice(4 * s, 4 * s + 4).filter((e) => e === 0).length;
        const lastOfClass = !seq.slice(s + 1).includes(seq[s]);
        if (pads > 0) assert.ok(lastOfClass, `CTA ${cr}: padding inside class ${seq[s]} at step ${s}`);
      }
      const [a, b] = wgmmaComputedSteps(entries, 4);
      assert.equal(a, seq.filter((c) => c !== 2).length);
      assert.equal(b, seq.filter((c) => c !== 1).length);
    }
    assert.ok(sawOwnSteps, 'the random selection should give warpgroups steps of their own');
  });

  test('a list of every causal chunk: both warpgroups compute every step up to the diagonal', () => {
    const n = 256, B = 16;
    const heads = [{ selected: new Int32Array(B * B), counts: new Int32Array(B), stride: B }];
    for (let m = 0; m < B; m++) {
      for (let j = 0; j <= m; j++) heads[0].selected[m * B + j] = j;
      heads[0].counts[m] = m + 1;
    }
    const lists = packChunkLists({ chunkSize: 16, numTokens: n, heads });
    const geo = wgmmaStepGeometry(n, 1, B, 16, 64);
    const last = wgmmaCtaSteps(lists, n, geo, 0, 1); // rows 128..255: key tiles 0..15
    assert.equal(last.filter((e) => e >>> 24 !== 0).length, 16);
    // Tiles 0..7 both, 8..11 both (left of warpgroup 1's rows and some of warpgroup 0's), 12..15 warpgroup 1 only.
    assert.deepEqual(wgmmaComputedSteps(last, 4), [3, 4]);
  });
});

describe('wgmma block-sparse tiling', () => {
  test('default, labels and their inverse', () => {
    assert.deepEqual(resolveBlockSparseWgmmaTiling({}), DEFAULT_BLOCK_SPARSE_WGMMA_TILING);
    assert.equal(blockSparseWgmmaLabel(DEFAULT_BLOCK_SPARSE_WGMMA_TILING), 'wgmma-n64-s3');
    assert.deepEqual(parseBlockSparseWgmmaLabel('wgmma-n128-s2'), { blockN: 128, stages: 2 });
    assert.equal(parseBlockSparseWgmmaLabel('h1m1'), null);
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-n32-s2'), /blockN must be 64 or 128/);
    assert.throws(() => resolveBlockSparseWgmmaTiling({ stages: 5 as 4 }), /stages must be 2, 3 or 4/);
  });

  test('shared memory: the defaults and 128-key steps three deep fit the 227 KB of an H100 block; four deep does not', () => {
    const limit = 227 * 1024;
    assert.equal(blockSparseWgmmaSharedBytes(128, { blockN: 64, stages: 3 }), (128 + 6 * 64) * 256 + 8 * 13 + 4 * 3 * 4 + 1024);
    assert.ok(blockSparseWgmmaSharedBytes(128, { blockN: 128, stages: 3 }) <= limit);
    assert.ok(blockSparseWgmmaSharedBytes(128, { blockN: 64, stages: 4 }) <= limit);
    assert.ok(blockSparseWgmmaSharedBytes(128, { blockN: 128, stages: 4 }) > limit);
  });

  test('step stride bounds the union plus three padded steps', () => {
    const g = wgmmaStepGeometry(16384, 32, 53, 16, 64);
    assert.equal(g.numCtaRows, 128);
    assert.equal(g.stepStride, 4 * Math.ceil((Math.min(1024, 8 * 53) + 9) / 4));
    assert.equal(wgmmaStepGeometry(100, 1, 7, 16, 128).stepStride, 8 * Math.ceil((7 + 21) / 8));
  });
});

/**
 * The kernel's synchronisation, step by step (block_sparse_prefill_wgmma): the producer fills K then V
 * of each step into stage i % S after the stage's previous fill was released by all 8 consumer warps
 * (two warpgroups here); each consumer warpgroup waits for K and either computes (P·V of the previous
 * step issued with this step's Q·Kᵀ, V of the previous step released after it; in the first stepsBoth
 * steps, which both compute, after taking its turn on the named barriers) or skips (pending P·V
 * flushed, both stages released once filled). Returns false on a deadlock; throws when a release
 * would count towards another fill's phase or a turn barrier would merge two generations.
 */
function simulate(computes: boolean[][], stages: number, stepsBoth: number, rand: () => number): boolean {
  const N = computes[0].length;
  for (let i = 0; i < stepsBoth; i++) assert.ok(computes[0][i] && computes[1][i], 'both warpgroups compute the leading steps');
  const filled = { K: new Array<number>(stages).fill(0), V: new Array<number>(stages).fill(0) }; // completed fills
  const released = { K: Array.from({ length: stages }, () => [] as number[]), V: Array.from({ length: stages }, () => [] as number[]) }; // per fill: releasing warpgroups
  const turnArrivals = [0, 0, 0], turnSyncs = [0, 0, 0]; // named barriers 1 and 2
  const releasedCount = (t: 'K' | 'V', st: number): number => released[t][st].length; // stored as count of completed release phases * 2 + partial
  const release = (t: 'K' | 'V', st: number, use: number, wg: number): void => {
    const arr = released[t][st];
    const phase = Math.floor(arr.length / 2);
    assert.equal(phase, use, `warpgroup ${wg} releases ${t}${st} fill ${use} while phase ${phase} is open`);
    assert.ok(filled[t][st] > use, `warpgroup ${wg} releases ${t}${st} fill ${use} before it was filled`);
    arr.push(wg);
  };
  // Each agent is a generator yielding predicates it waits on.
  function* producer(): Generator<() => boolean> {
    for (let i = 0, st = 0, use = 0; i < N; i++) {
      const [s, u] = [st, use];
      if (u > 0) yield () => releasedCount('K', s) >= 2 * u;
      filled.K[s]++;
      if (u > 0) yield () => releasedCount('V', s) >= 2 * u;
      filled.V[s]++;
      if (++st === stages) { st = 0; ++use; }
    }
  }
  function* consumer(wg: number): Generator<() => boolean> {
    const bar = 1 + wg, other = 2 - wg;
    if (wg === 1 && stepsBoth > 0) turnArrivals[1]++;
    let st = 0, use = 0, pst = 0, puse = 0, pending = false;
    const sync = function* (): Generator<() => boolean> {
      const gen = ++turnSyncs[bar];
      assert.ok(turnArrivals[bar] <= gen, `barrier ${bar}: two arrivals in one generation`);
      yield () => turnArrivals[bar] >= gen;
    };
    const arriveTurn = (i: number): void => {
      if (wg === 0 || i + 1 < stepsBoth) {
        turnArrivals[other]++;
        assert.ok(turnArrivals[other] <= turnSyncs[other] + 1, `barrier ${other}: arrivals ran ahead of its waits`);
      }
    };
    for (let i = 0; i < N; i++) {
      const [s, u] = [st, use];
      yield () => filled.K[s] > u;
      const turns = i < stepsBoth;
      if (computes[wg][i]) {
        if (pending) { const [ps, pu] = [pst, puse]; yield () => filled.V[ps] > pu; }
        if (turns) yield* sync();
        if (turns) arriveTurn(i);
        release('K', s, u, wg);
        if (pending) release('V', pst, puse, wg);
        pending = true; pst = s; puse = u;
      } else {
        if (pending) {
          const [ps, pu] = [pst, puse];
          yield () => filled.V[ps] > pu;
          release('V', ps, pu, wg);
        }
        pending = false;
        release('K', s, u, wg);
        yield () => filled.V[s] > u;
        release('V', s, u, wg);
      }
      if (++st === stages) { st = 0; ++use; }
    }
    if (pending) { const [ps, pu] = [pst, puse]; yield () => filled.V[ps] > pu; release('V', ps, pu, wg); }
  }
  const agents = [producer(), consumer(0), consumer(1)];
  const waits: (null | (() => boolean))[] = agents.map(() => null);
  const done = agents.map(() => false);
  const advance = (a: number): void => {
    const r = agents[a].next();
    if (r.done) done[a] = true;
    else waits[a] = r.value;
  };
  agents.forEach((_, a) => advance(a));
  for (;;) {
    const ready = agents.map((_, a) => a).filter((a) => !done[a] && waits[a]!());
    if (ready.length === 0) return done.every(Boolean);
    advance(ready[Math.floor(rand() * ready.length)]);
  }
}

describe('wgmma block-sparse synchronisation model', () => {
  test('finishes under random schedules for random compute/skip patterns, 2-4 stages', () => {
    const r = rng(42);
    for (let trial = 0; trial < 400; trial++) {
      const N = 1 + Math.floor(r() * 14);
      const both = Math.floor(r() * (N + 1) * (trial % 2));
      const p0 = r(), p1 = r();
      const computes = [Array.from({ length: N }, (_, i) => i < both || r() < p0), Array.from({ length: N }, (_, i) => i < both || r() < p1)];
      const stages = 2 + (trial % 3);
      assert.ok(simulate(computes, stages, both, r), `deadlock: stages ${stages}, both ${both}, computes ${JSON.stringify(computes)}`);
    }
  });

  test('finishes on the step lists of real selections', () => {
    const sel = randomSelection(1500, 16, 1, 9);
    const lists = packChunkLists(sel);
    const geo = wgmmaStepGeometry(1500, 1, lists.stride, 16, 64);
    const r = rng(7);
    for (let cr = 0; cr < geo.numCtaRows; cr++) {
      const entries = wgmmaCtaSteps(lists, 1500, geo, 0, cr);
      const N = entries.length / 4;
      const computes = [0, 1].map((wg) => Array.from({ length: N }, (_, s) => entries.slice(4 * s, 4 * s + 4).some((e) => ((e >>> 24) >> (4 * wg)) & 0xf)));
      if (N > 0) assert.ok(simulate(computes, 2 + (cr % 3), wgmmaStepsBoth(entries, 4), r), `deadlock in CTA ${cr}`);
    }
  });
});

describe('block-sparse kernel choice', () => {
  const hopper = { computeCapability: [9, 0] as [number, number], name: 'H100' };
  const ampere = { computeCapability: [8, 0] as [number, number], name: 'A100' };

  test('no option: wgmma with the auto tiling on Hopper at head dims 64 and 128', () => {
    for (const D of [64, 128]) {
      assert.deepEqual(blockSparseKernelChoice(hopper, D, {}), { kernel: 'wgmma', tiling: AUTO_BLOCK_SPARSE_WGMMA_TILING });
    }
    assert.doesNotThrow(() => resolveBlockSparseWgmmaTiling(AUTO_BLOCK_SPARSE_WGMMA_TILING));
  });

  test('no option elsewhere: mma.sync, saying why', () => {
    const c = blockSparseKernelChoice(ampere, 128, {});
    assert.equal(c.kernel, 'mma');
    assert.match(c.kernel === 'mma' ? c.reason : '', /compute capability 9\.0.*A100 is 8\.0/);
  });

  test('an explicit option decides, on any device', () => {
    assert.deepEqual(blockSparseKernelChoice(hopper, 128, { headsPerCta: 1, mTiles: 1 }), { kernel: 'mma', reason: 'mma.sync tiling given' });
    assert.equal(blockSparseKernelChoice(hopper, 64, { mTiles: 2 }).kernel, 'mma');
    assert.deepEqual(blockSparseKernelChoice(ampere, 128, { wgmma: { blockN: 64 } }), { kernel: 'wgmma', tiling: { blockN: 64 } });
  });
});

describe('work model of larger CTAs (groupedCtaWork, bench/block-sparse-wgmma-model.ts)', () => {
  test('at 2 consumers it counts what the kernel\'s own step lists compute', () => {
    for (const [mode, seed] of [['random', 11], ['shared', 12]] as const) {
      const n = 1500, sel = randomSelection(n, 16, 1, seed, mode);
      const lists = packChunkLists(sel);
      for (const blockN of [64, 128] as const) {
        const geo = wgmmaStepGeometry(n, 1, lists.stride, 16, blockN);
        for (let cr = 0; cr < geo.numCtaRows; cr++) {
          const entries = wgmmaCtaSteps(lists, n, geo, 0, cr);
          const [a, b] = wgmmaComputedSteps(entries, geo.subTiles);
          const w = groupedCtaWork(ctaTileMasksForSlots(lists, n, 0, cr, 8), 2, geo.subTiles);
          assert.deepEqual(w.computed, [a, b], `${mode} blockN=${blockN} CTA ${cr}`);
          assert.equal(w.tiles, entries.filter((e) => e >>> 24 !== 0).length);
          assert.equal(w.unpaired, Math.abs(a - b));
        }
      }
    }
  });

  test('3 consumers: one class per warpgroup set, padded to whole steps', () => {
    // Slots 0..11; warpgroup w owns slots 4w..4w+3.
    const masks = new Map<number, number>([
      [0, 0xfff], [1, 0x111], // all three
      [2, 0x00f], [3, 0x001], [4, 0x002], [5, 0x004], [6, 0x008], // warpgroup 0 only: 5 tiles → 2 steps
      [7, 0x0f0 | 0xf00], // warpgroups 1 and 2
      [8, 0x100], // warpgroup 2 only
    ]);
    const w = groupedCtaWork(masks, 3, 4);
    assert.equal(w.tiles, 9);
    assert.deepEqual(w.computed, [1 + 2, 1 + 1, 1 + 1 + 1]);
    assert.equal(w.unpaired, 0);
    assert.throws(() => groupedCtaWork(new Map([[0, 0x1000]]), 3, 4), /does not fit 3 warpgroups/);
  });

  test('more rows per CTA never gather more tiles in all than fewer rows do', () => {
    const n = 2000, sel = randomSelection(n, 16, 1, 13, 'random');
    const lists = packChunkLists(sel);
    const total = (slots: number) => {
      let tiles = 0;
      for (let cr = 0; cr * slots * 16 < n; cr++) tiles += ctaTileMasksForSlots(lists, n, 0, cr, slots).size;
      return tiles;
    };
    // 24 slots cover the rows of three 8-slot CTAs, whose unions it merges.
    assert.ok(total(24) <= total(8) && total(12) <= total(4), `${total(24)} ${total(8)} ${total(12)} ${total(4)}`);
  });
});
