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
  type WgmmaConsumers, ctaTileMasksForSlots, groupedCtaWork, wgmmaAttendedKeys, wgmmaComputedSteps, wgmmaCtaSteps, wgmmaCtaTileMasks,
  wgmmaCtaOfLaunch, wgmmaEntryMask, wgmmaEntryTile, wgmmaStepGeometry, wgmmaStepsAll,
} from '../../src/backends/cuda/block-sparse-wgmma-layout.js';
import {
  DEFAULT_BLOCK_SPARSE_WGMMA_TILING, blockSparseWgmmaLabel, blockSparseWgmmaSharedBytes, parseBlockSparseWgmmaLabel,
  resolveBlockSparseWgmmaTiling, wgmmaAblationDefines,
} from '../../src/backends/cuda/kernels/block-sparse-prefill-wgmma.js';
import {
  AUTO_BLOCK_SPARSE_WGMMA_TILING, AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING, autoTakes192RowTiling, blockSparseKernelChoice, chunkListsAreSparse,
} from '../../src/backends/cuda/kernels/block-sparse-prefill.js';
import { blockSparseVariantOptions, cellSummaryLine } from '../../bench/block-sparse.js';
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
  // Three consumers take 64-key steps only (the kernel's register budget).
  const tilings = [{ blockN: 64, consumers: 2 }, { blockN: 128, consumers: 2 }, { blockN: 64, consumers: 3 }] as const;
  for (const cs of cases) {
    for (const { blockN, consumers } of tilings) {
      test(`n=${cs.n} c=${cs.c} ${cs.mode} blockN=${blockN} consumers=${consumers}: each query attends exactly its selected keys`, () => {
        const sel = randomSelection(cs.n, cs.c, cs.H, cs.seed, cs.mode);
        const lists = packChunkLists(sel);
        const geo = wgmmaStepGeometry(cs.n, cs.H, lists.stride, cs.c, blockN, consumers);
        for (let h = 0; h < cs.H; h++) {
          for (let cr = 0; cr < geo.numCtaRows; cr++) {
            const entries = wgmmaCtaSteps(lists, cs.n, geo, h, cr);
            assert.ok(entries.length <= geo.stepStride, `CTA ${h}/${cr}: ${entries.length} entries over the stride ${geo.stepStride}`);
            assert.equal(entries.length % geo.subTiles, 0);
            const got = wgmmaAttendedKeys(entries, geo, cs.n, cs.n, cr);
            for (let qi = cr * geo.ctaRows; qi < Math.min(cs.n, (cr + 1) * geo.ctaRows); qi++) {
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
      assert.equal(wgmmaStepsAll(entries, 4), firstOwn < 0 ? seq.length : firstOwn);
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

  test('3 consumers: all-three steps first, then the pair classes round-robin, then the singles round-robin; each tile once', () => {
    const consumers = 3;
    for (const mode of ['random', 'shared'] as const) {
      const sel = randomSelection(3000, 16, 1, 17, mode);
      const lists = packChunkLists(sel);
      const geo = wgmmaStepGeometry(3000, 1, lists.stride, 16, 64, consumers);
      const seen = new Set<number>();
      for (let cr = 0; cr < geo.numCtaRows; cr++) {
        const masks = wgmmaCtaTileMasks(lists, 3000, 0, cr, consumers);
        const entries = wgmmaCtaSteps(lists, 3000, geo, 0, cr);
        const real = entries.filter((e) => wgmmaEntryMask(e, consumers) !== 0);
        assert.deepEqual(real.map((e) => wgmmaEntryTile(e, consumers)).sort((a, b) => a - b), [...masks.keys()], `CTA ${cr}: every tile once`);
        for (const e of real) assert.equal(wgmmaEntryMask(e, consumers), masks.get(wgmmaEntryTile(e, consumers)), `CTA ${cr}: mask of tile`);
        const setOf = (e: number) => [0, 1, 2].reduce((set, w) => set | (((wgmmaEntryMask(e, consumers) >>> (4 * w)) & 0xf) ? 1 << w : 0), 0);
        const stepSets = Array.from({ length: entries.length / 4 }, (_, s) => [...new Set(entries.slice(4 * s, 4 * s + 4).filter((e) => e !== 0).map(setOf))]);
        for (const c of stepSets) assert.equal(c.length, 1, `CTA ${cr}: a step mixes warpgroup sets ${c}`);
        const seq = stepSets.map((c) => c[0]);
        const tier = (set: number) => (set === 7 ? 0 : [3, 5, 6].includes(set) ? 1 : 2);
        for (let s = 1; s < seq.length; s++) assert.ok(tier(seq[s - 1]) <= tier(seq[s]), `CTA ${cr}: tiers out of order (${seq})`);
        // Round-robin inside a tier: in each round every class that still has steps appears once, in set order.
        for (const [t, order] of [[1, [3, 5, 6]], [2, [1, 2, 4]]] as const) {
          const within = seq.filter((set) => tier(set) === t);
          const left = new Map<number, number>(order.map((set) => [set, within.filter((x) => x === set).length]));
          const expected: number[] = [];
          while ([...left.values()].some((x) => x > 0)) {
            for (const set of order) if (left.get(set)! > 0) { expected.push(set); left.set(set, left.get(set)! - 1); }
          }
          assert.deepEqual(within, expected, `CTA ${cr}: tier ${t} is not round-robin (${seq})`);
        }
        seq.forEach((set) => seen.add(set));
        const computed = wgmmaComputedSteps(entries, 4, consumers);
        for (let w = 0; w < 3; w++) assert.equal(computed[w], seq.filter((set) => (set >> w) & 1).length);
        assert.equal(wgmmaStepsAll(entries, 4, consumers), seq.filter((set) => set === 7).length);
      }
      if (mode === 'random') for (const set of [1, 2, 3, 4, 5, 6]) assert.ok(seen.has(set), `random selection never made class ${set}`);
    }
  });

  test('3 consumers: entries keep key tiles up to 2^20 - 1 beside a 12-bit mask', () => {
    const e = ((1 << 20) - 1) | (0xfff << 20);
    assert.equal(wgmmaEntryTile(e, 3), (1 << 20) - 1);
    assert.equal(wgmmaEntryMask(e, 3), 0xfff);
    assert.equal(wgmmaEntryMask(5 | (0x80 << 24), 2), 0x80);
  });
});

describe('wgmma block-sparse tiling', () => {
  test('default, labels and their inverse', () => {
    assert.deepEqual(resolveBlockSparseWgmmaTiling({}), DEFAULT_BLOCK_SPARSE_WGMMA_TILING);
    assert.equal(blockSparseWgmmaLabel(DEFAULT_BLOCK_SPARSE_WGMMA_TILING), 'wgmma-n64-s3');
    assert.deepEqual(parseBlockSparseWgmmaLabel('wgmma-n128-s2'), { blockN: 128, stages: 2, consumers: 2, ctaOrder: 'heads' });
    assert.deepEqual(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s2'), { blockN: 64, stages: 2, consumers: 3, ctaOrder: 'heads' });
    assert.equal(blockSparseWgmmaLabel({ blockN: 64, stages: 3, consumers: 3 }), 'wgmma-c3-n64-s3');
    // The KV-head-major block order: a '-kv' suffix; the default order adds nothing to a label.
    assert.deepEqual(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv'), { blockN: 64, stages: 3, consumers: 3, ctaOrder: 'kv' });
    assert.equal(blockSparseWgmmaLabel({ blockN: 128, stages: 2, consumers: 2, ctaOrder: 'kv' }), 'wgmma-n128-s2-kv');
    assert.equal(blockSparseWgmmaLabel({ blockN: 128, stages: 2, consumers: 2, ctaOrder: 'heads' }), 'wgmma-n128-s2');
    assert.equal(parseBlockSparseWgmmaLabel('wgmma-n128-s2-kw'), null);
    assert.throws(() => resolveBlockSparseWgmmaTiling({ ctaOrder: 'rows' as 'kv' }), /ctaOrder must be 'heads' or 'kv'/);
    assert.equal(parseBlockSparseWgmmaLabel('h1m1'), null);
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-n32-s2'), /blockN must be 64 or 128/);
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-c4-n64-s2'), /consumers must be 2 or 3/);
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-c3-n128-s2'), /3 consumers take blockN 64 only/);
    assert.throws(() => resolveBlockSparseWgmmaTiling({ stages: 5 as 4 }), /stages must be 2, 3 or 4/);
  });

  test('ablation flags: labels, their inverse, defines only for set flags, checks', () => {
    const plain = parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv');
    assert.ok(plain && !('ablation' in plain), 'a label without flags resolves to the plain tiling');
    assert.deepEqual(resolveBlockSparseWgmmaTiling({ ablation: { deferPv: false } }), DEFAULT_BLOCK_SPARSE_WGMMA_TILING);
    assert.deepEqual(wgmmaAblationDefines(DEFAULT_BLOCK_SPARSE_WGMMA_TILING), {});
    const all = parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-dpv-lm-ot-iw');
    assert.deepEqual(all, { blockN: 128, stages: 2, consumers: 2, ctaOrder: 'kv', ablation: { deferPv: true, leanMask: true, ownTurns: true, idleWarps: true } });
    assert.deepEqual(wgmmaAblationDefines(all!), { DEFER_PV: 1, LEAN_MASK: 1, OWN_TURNS: 1, IDLE_WARPS: 1 });
    for (const label of ['wgmma-c3-n64-s3-kv-dpv', 'wgmma-c3-n64-s3-lm', 'wgmma-n64-s3-ot', 'wgmma-n128-s2-dpv-ot', 'wgmma-c3-n64-s3-kv-iw', 'wgmma-n128-s2-lm-iw']) {
      assert.equal(blockSparseWgmmaLabel(parseBlockSparseWgmmaLabel(label)!), label);
    }
    assert.deepEqual(wgmmaAblationDefines(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-dpv')!), { DEFER_PV: 1 });
    assert.equal(parseBlockSparseWgmmaLabel('wgmma-n128-s2-lm-dpv'), null, 'flags in the fixed order only');
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-ot'), /ownTurns pairs the own steps of 2 consumers only/);
    assert.deepEqual(wgmmaAblationDefines(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-lm-ac')!), { LEAN_MASK: 1, ALL_COMPUTE: 1 });
    assert.deepEqual(parseBlockSparseWgmmaLabel('wgmma-n128-s3-kv-sk')?.ablation, { kvSkew: true });
    assert.deepEqual(wgmmaAblationDefines(parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-sk-ek')!), { KV_SKEW: 1, EARLY_K: 1 });
    assert.equal(blockSparseWgmmaLabel(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-iw-sk')!), 'wgmma-c3-n64-s3-kv-iw-sk');
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-n128-s2-dpv-ac'), /allCompute skips no step/);
    assert.deepEqual(parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-cf-eg')?.ablation, { contigFill: true, entGlobal: true });
    assert.deepEqual(wgmmaAblationDefines(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-sk-cf')!), { KV_SKEW: 1, CONTIG_FILL: 1 });
    assert.equal(blockSparseWgmmaLabel(parseBlockSparseWgmmaLabel('wgmma-n64-s2-eg')!), 'wgmma-n64-s2-eg');
    assert.equal(parseBlockSparseWgmmaLabel('wgmma-n128-s2-eg-cf'), null, 'flags in the fixed order only');
    assert.deepEqual(wgmmaAblationDefines(parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-cf-eg-ea')!), { CONTIG_FILL: 1, ENT_GLOBAL: 1, ENT_AHEAD: 1 });
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-n128-s2-sk-ea'), /entAhead is written for the plain fill order/);
    assert.deepEqual(parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-lm-ms')?.ablation, { leanMask: true, maskSelect: true });
    assert.deepEqual(wgmmaAblationDefines(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-ms')!), { MASK_SELECT: 1 });
    assert.equal(blockSparseWgmmaLabel(parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-ea-ms')!), 'wgmma-n128-s2-kv-ea-ms');
    assert.equal(parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-ms-lm'), null, 'flags in the fixed order only');
    assert.deepEqual(wgmmaAblationDefines(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-lm-ms-eb')!), { LEAN_MASK: 1, MASK_SELECT: 1, ENT_BALLOT: 1 });
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-eb'), /entBallot needs maskSelect or maskFirst/);
    assert.deepEqual(wgmmaAblationDefines(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-mf-eb')!), { MASK_FIRST: 1, ENT_BALLOT: 1 });
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-ms-mf'), /maskFirst replaces/);
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-lm-mf'), /maskFirst replaces/);
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-eg-ms-eb'), /not with entGlobal/);
    assert.deepEqual(wgmmaAblationDefines(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-ms-eb-ps-wc')!), { MASK_SELECT: 1, ENT_BALLOT: 1, PERSISTENT: 1, WORK_COUNTER: 1 });
    assert.equal(blockSparseWgmmaLabel(parseBlockSparseWgmmaLabel('wgmma-n128-s2-kv-mf-eb-ps-wc')!), 'wgmma-n128-s2-kv-mf-eb-ps-wc');
    assert.throws(() => parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-ms-eb-wc'), /workCounter hands out a persistent CTA's items: it needs persistent/);
    assert.equal(parseBlockSparseWgmmaLabel('wgmma-c3-n64-s3-kv-wc-ps'), null, 'flags in the fixed order only');
    assert.throws(() => resolveBlockSparseWgmmaTiling({ ablation: { fast: true } as never }), /unknown ablation flag fast/);
    assert.throws(() => resolveBlockSparseWgmmaTiling({ ablation: { leanMask: 1 as unknown as boolean } }), /leanMask must be a boolean/);
  });

  test('the bench takes ablation labels and sums a cell up against its first variant', () => {
    assert.deepEqual(blockSparseVariantOptions('wgmma-c3-n64-s3-kv-dpv-lm'),
      { wgmma: { blockN: 64, stages: 3, consumers: 3, ctaOrder: 'kv', ablation: { deferPv: true, leanMask: true } } });
    assert.throws(() => blockSparseVariantOptions('wgmma-n128-s2-kv-fast'), /neither/);
    const row = (variant: string, kernelMs: number) => ({
      n: 16384, data: 'random', requested: 0.5, achieved: 0.5, topChunks: 300, variant, kernelMs, estimationMs: 0, denseMs: 1, idealMs: 1, ratio: 1, ratioWithEstimation: 1,
    });
    assert.equal(cellSummaryLine([row('a', 4), row('b', 3.8), row('c', 4.2)]), '# cell n=16384 random s=0.5: a 4.000, b 3.800 (-5.0%), c 4.200 (+5.0%)');
    assert.throws(() => cellSummaryLine([]), /no rows/);
  });

  test('shared memory: the defaults and 128-key steps three deep fit the 227 KB of an H100 block; four deep does not', () => {
    const limit = 227 * 1024;
    assert.equal(blockSparseWgmmaSharedBytes(128, { blockN: 64, stages: 3, consumers: 2 }), (128 + 6 * 64) * 256 + 8 * 13 + 4 * 3 * 4 + 1024);
    assert.ok(blockSparseWgmmaSharedBytes(128, { blockN: 128, stages: 3, consumers: 2 }) <= limit);
    assert.ok(blockSparseWgmmaSharedBytes(128, { blockN: 64, stages: 4, consumers: 2 }) <= limit);
    assert.ok(blockSparseWgmmaSharedBytes(128, { blockN: 128, stages: 4, consumers: 2 }) > limit);
    // Three consumers: a 192-row Q tile (48 KB at D = 128) and 32 KB a stage.
    assert.equal(blockSparseWgmmaSharedBytes(128, { blockN: 64, stages: 2, consumers: 3 }), (192 + 4 * 64) * 256 + 8 * 9 + 4 * 2 * 4 + 1024);
    assert.ok(blockSparseWgmmaSharedBytes(128, { blockN: 64, stages: 4, consumers: 3 }) <= limit);
    // Persistent: a second Q tile and three barriers; with the work counter two more barriers and two item words.
    const c3ps = { blockN: 64, stages: 3, consumers: 3, ctaOrder: 'kv', ablation: { persistent: true } } as const;
    assert.equal(blockSparseWgmmaSharedBytes(128, c3ps), (2 * 192 + 6 * 64) * 256 + 8 * (13 + 3) + 4 * 3 * 4 + 1024);
    assert.equal(blockSparseWgmmaSharedBytes(128, { ...c3ps, ablation: { persistent: true, workCounter: true } }), blockSparseWgmmaSharedBytes(128, c3ps) + 24);
    assert.ok(blockSparseWgmmaSharedBytes(128, { ...c3ps, ablation: { persistent: true, workCounter: true } }) <= limit);
  });

  test('step stride bounds the union plus three padded steps', () => {
    const g = wgmmaStepGeometry(16384, 32, 53, 16, 64);
    assert.equal(g.numCtaRows, 128);
    assert.equal(g.stepStride, 4 * Math.ceil((Math.min(1024, 8 * 53) + 9) / 4));
    assert.equal(wgmmaStepGeometry(100, 1, 7, 16, 128).stepStride, 8 * Math.ceil((7 + 21) / 8));
    // Three consumers: 12 slots a CTA, seven classes' padding.
    const g3 = wgmmaStepGeometry(16384, 32, 53, 16, 64, 3);
    assert.equal(g3.numCtaRows, Math.ceil(1024 / 12));
    assert.equal(g3.stepStride, 4 * Math.ceil((Math.min(1024, 12 * 53) + 21) / 4));
  });
});

/**
 * The kernel's synchronisation, step by step (block_sparse_prefill_wgmma), for C consumer warpgroups:
 * the producer fills K then V of each step into stage i % S after the stage's previous fill was
 * released by every consumer warpgroup (its 4 warps' arrivals count as one here); each consumer
 * warpgroup waits for K and either computes (P·V of the previous step issued with this step's Q·Kᵀ, V
 * of the previous step released after it; in the first stepsAll steps, which all compute, after taking
 * its turn: warpgroup w waits on named barrier 1 + w, then arrives on the next one's, 1 + (w + 1) % C,
 * which the last warpgroup skips in the last such step; the last warpgroup arrives once on barrier 1
 * before the loop) or skips (pending P·V flushed, both stages released once filled). A turn barrier
 * counts one waiting and one arriving warpgroup per generation. Returns false on a deadlock; throws
 * when a release would count towards another fill's phase, a turn barrier would merge two
 * generations, or an arrival is left without its wait at the end. keepPendingOnSkip: the rule the
 * kernel must not follow (a skipped step leaves the pending P·V, and its V stage, held), to show that
 * the model sees the deadlock it causes. Ablation rules (the kernel's DEFER_PV and OWN_TURNS):
 * deferLimit: a skipped step keeps the pending P·V while it is from fewer than deferLimit steps back
 * (the kernel's DEFER_PV: stages); pairedOwn: turns also in that many pairs of own steps after the
 * leading ones (warpgroup 0's, then 1's; two consumers); kvSkew: the producer fills K of step i + 1
 * before V of step i (the kernel's KV_SKEW); earlyK: a skipped step releases its K stage before the
 * flush (EARLY_K).
 */
function simulate(
  computes: boolean[][], stages: number, stepsAll: number, rand: () => number, keepPendingOnSkip = false,
  rules: { deferLimit?: number; pairedOwn?: number; kvSkew?: boolean; earlyK?: boolean } = {},
): boolean {
  const C = computes.length;
  const N = computes[0].length;
  const paired = rules.pairedOwn ?? 0;
  const turnEnd = stepsAll + 2 * paired;
  for (let i = 0; i < stepsAll; i++) assert.ok(computes.every((c) => c[i]), 'all warpgroups compute the leading steps');
  if (paired > 0) assert.equal(C, 2, 'own-step turns pair two consumers');
  for (let i = stepsAll; i < turnEnd; i++) {
    const owner = (i - stepsAll) % 2;
    assert.ok(computes[owner][i] && !computes[1 - owner][i], `step ${i} is warpgroup ${owner}'s own step of a pair`);
  }
  const filled = { K: new Array<number>(stages).fill(0), V: new Array<number>(stages).fill(0) }; // completed fills
  const released = { K: Array.from({ length: stages }, () => [] as number[]), V: Array.from({ length: stages }, () => [] as number[]) }; // releasing warpgroups, all fills
  const turnArrivals = new Array<number>(C + 1).fill(0), turnSyncs = new Array<number>(C + 1).fill(0); // named barriers 1..C
  const releasedCount = (t: 'K' | 'V', st: number): number => released[t][st].length;
  const release = (t: 'K' | 'V', st: number, use: number, wg: number): void => {
    const arr = released[t][st];
    const phase = Math.floor(arr.length / C);
    assert.equal(phase, use, `warpgroup ${wg} releases ${t}${st} fill ${use} while phase ${phase} is open`);
    assert.ok(filled[t][st] > use, `warpgroup ${wg} releases ${t}${st} fill ${use} before it was filled`);
    arr.push(wg);
  };
  // Each agent is a generator yielding predicates it waits on.
  function* fill(t: 'K' | 'V', i: number): Generator<() => boolean> {
    const s = i % stages, u = Math.floor(i / stages);
    if (u > 0) yield () => releasedCount(t, s) >= C * u;
    filled[t][s]++;
  }
  function* producer(): Generator<() => boolean> {
    if (rules.kvSkew) {
      for (let i = 0; i <= N; i++) {
        if (i < N) yield* fill('K', i);
        if (i > 0) yield* fill('V', i - 1);
      }
      return;
    }
    for (let i = 0; i < N; i++) {
      yield* fill('K', i);
      yield* fill('V', i);
    }
  }
  function* consumer(wg: number): Generator<() => boolean> {
    const bar = 1 + wg, next = 1 + ((wg + 1) % C);
    if (wg === C - 1 && turnEnd > 0) turnArrivals[1]++;
    let st = 0, use = 0, pst = 0, puse = 0, pstep = 0, pending = false;
    const sync = function* (): Generator<() => boolean> {
      const gen = ++turnSyncs[bar];
      assert.ok(turnArrivals[bar] <= gen, `barrier ${bar}: two arrivals in one generation`);
      yield () => turnArrivals[bar] >= gen;
    };
    const arriveTurn = (i: number): void => {
      if (wg !== C - 1 || i + 1 < turnEnd) {
        turnArrivals[next]++;
        assert.ok(turnArrivals[next] <= turnSyncs[next] + 1, `barrier ${next}: arrivals ran ahead of its waits`);
      }
    };
    for (let i = 0; i < N; i++) {
      const [s, u] = [st, use];
      yield () => filled.K[s] > u;
      const turns = i < turnEnd;
      if (computes[wg][i]) {
        if (pending) { const [ps, pu] = [pst, puse]; yield () => filled.V[ps] > pu; }
        if (turns) yield* sync();
        if (turns) arriveTurn(i);
        release('K', s, u, wg);
        if (pending) release('V', pst, puse, wg);
        pending = true; pst = s; puse = u; pstep = i;
      } else {
        const kept = keepPendingOnSkip || (rules.deferLimit !== undefined && i - pstep < rules.deferLimit);
        if (rules.earlyK) release('K', s, u, wg);
        if (pending && !kept) {
          const [ps, pu] = [pst, puse];
          yield () => filled.V[ps] > pu;
          release('V', ps, pu, wg);
          pending = false;
        }
        if (!rules.earlyK) release('K', s, u, wg);
        yield () => filled.V[s] > u;
        release('V', s, u, wg);
      }
      if (++st === stages) { st = 0; ++use; }
    }
    if (pending) { const [ps, pu] = [pst, puse]; yield () => filled.V[ps] > pu; release('V', ps, pu, wg); }
  }
  const agents = [producer(), ...Array.from({ length: C }, (_, wg) => consumer(wg))];
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
    if (ready.length === 0) {
      if (!done.every(Boolean)) return false;
      // Every turn-barrier arrival found its wait (a leftover would meet the next CTA's barrier use).
      for (let b = 1; b <= C; b++) assert.equal(turnArrivals[b], turnSyncs[b], `barrier ${b}: ${turnArrivals[b]} arrivals, ${turnSyncs[b]} waits`);
      return true;
    }
    advance(ready[Math.floor(rand() * ready.length)]);
  }
}

/**
 * Pairs of own steps after the leading shared ones (warpgroup 0's step, then warpgroup 1's), as the
 * steps kernel counts them for OWN_TURNS: min(steps of warpgroup 0's own class, of warpgroup 1's).
 */
function pairedOwnSteps(computes: boolean[][], stepsAll: number): number {
  let pairs = 0;
  for (let i = stepsAll; i + 1 < computes[0].length; i += 2) {
    if (computes[0][i] && !computes[1][i] && !computes[0][i + 1] && computes[1][i + 1]) pairs++;
    else break;
  }
  return pairs;
}

/** Which steps each warpgroup computes in a CTA's entries (the kernel's skip rule). */
function computesOf(entries: number[], subTiles: number, consumers: WgmmaConsumers): boolean[][] {
  return Array.from({ length: consumers }, (_, wg) => Array.from({ length: entries.length / subTiles },
    (_, s) => entries.slice(subTiles * s, subTiles * (s + 1)).some((e) => (wgmmaEntryMask(e, consumers) >>> (4 * wg)) & 0xf)));
}

describe('wgmma block-sparse synchronisation model', () => {
  for (const consumers of [2, 3] as const) {
    test(`${consumers} consumers: finishes under random schedules for random compute/skip patterns, 2-4 stages`, () => {
      const r = rng(40 + consumers);
      for (let trial = 0; trial < 400; trial++) {
        const N = 1 + Math.floor(r() * 14);
        const all = Math.floor(r() * (N + 1) * (trial % 2));
        const computes = Array.from({ length: consumers }, () => {
          const p = r();
          return Array.from({ length: N }, (_, i) => i < all || r() < p);
        });
        const stages = 2 + (trial % 3);
        assert.ok(simulate(computes, stages, all, r), `deadlock: stages ${stages}, all ${all}, computes ${JSON.stringify(computes)}`);
      }
    });

    test(`${consumers} consumers: finishes on the step lists of real selections`, () => {
      const sel = randomSelection(1500, 16, 1, 9);
      const lists = packChunkLists(sel);
      const geo = wgmmaStepGeometry(1500, 1, lists.stride, 16, 64, consumers);
      const r = rng(7);
      for (let cr = 0; cr < geo.numCtaRows; cr++) {
        const entries = wgmmaCtaSteps(lists, 1500, geo, 0, cr);
        if (entries.length > 0) {
          assert.ok(simulate(computesOf(entries, 4, consumers), 2 + (cr % 3), wgmmaStepsAll(entries, 4, consumers), r), `deadlock in CTA ${cr}`);
        }
      }
    });
  }

  for (const consumers of [2, 3] as const) {
    test(`${consumers} consumers, DEFER_PV: finishes under random schedules with the pending P·V kept across up to stages - 1 skips`, () => {
      const r = rng(140 + consumers);
      for (let trial = 0; trial < 400; trial++) {
        const N = 1 + Math.floor(r() * 14);
        const all = Math.floor(r() * (N + 1) * (trial % 2));
        const computes = Array.from({ length: consumers }, () => {
          const p = r();
          return Array.from({ length: N }, (_, i) => i < all || r() < p);
        });
        const stages = 2 + (trial % 3);
        assert.ok(simulate(computes, stages, all, r, false, { deferLimit: stages }), `deadlock: stages ${stages}, all ${all}, computes ${JSON.stringify(computes)}`);
      }
    });
  }

  for (const consumers of [2, 3] as const) {
    test(`${consumers} consumers, KV_SKEW and EARLY_K: K of step i + 1 before V of step i, K released before a skip's flush: finish under random schedules and on real step lists`, () => {
      const r = rng(240 + consumers);
      for (let trial = 0; trial < 400; trial++) {
        const N = 1 + Math.floor(r() * 14);
        const all = Math.floor(r() * (N + 1) * (trial % 2));
        const computes = Array.from({ length: consumers }, () => {
          const p = r();
          return Array.from({ length: N }, (_, i) => i < all || r() < p);
        });
        const stages = 2 + (trial % 3);
        const paired = consumers === 2 && trial % 3 === 0 ? pairedOwnSteps(computes, all) : 0;
        const earlyK = trial % 4 < 2; // KV_SKEW alone and with EARLY_K
        assert.ok(simulate(computes, stages, all, r, false, { kvSkew: true, pairedOwn: paired, earlyK }), `deadlock: stages ${stages}, all ${all}, computes ${JSON.stringify(computes)}`);
        assert.ok(simulate(computes, stages, all, r, false, { earlyK: true }), `EARLY_K alone: deadlock: stages ${stages}, all ${all}, computes ${JSON.stringify(computes)}`);
      }
      const sel = randomSelection(1500, 16, 1, 9);
      const lists = packChunkLists(sel);
      const geo = wgmmaStepGeometry(1500, 1, lists.stride, 16, 64, consumers);
      for (let cr = 0; cr < geo.numCtaRows; cr++) {
        const entries = wgmmaCtaSteps(lists, 1500, geo, 0, cr);
        if (entries.length === 0) continue;
        for (const stages of [2, 3, 4]) {
          assert.ok(simulate(computesOf(entries, 4, consumers), stages, wgmmaStepsAll(entries, 4, consumers), r, false, { kvSkew: true, earlyK: true }), `deadlock in CTA ${cr}, stages ${stages}`);
        }
      }
    });
  }

  test('DEFER_PV: keeping the pending P·V one step longer (stages skips) deadlocks, so the kernel\'s bound is tight', () => {
    // Warpgroup 0 computes step 0 and then skips steps 1..stages holding V0: the skip at step `stages`
    // waits for V of that step, the producer's next fill of stage 0, which waits for V0's release.
    for (const stages of [2, 3, 4]) {
      const N = stages + 2;
      const computes = [Array.from({ length: N }, (_, i) => i === 0 || i === N - 1), Array.from({ length: N }, () => true)];
      for (let seed = 0; seed < 10; seed++) {
        assert.equal(simulate(computes, stages, 0, rng(seed), false, { deferLimit: stages + 1 }), false, `stages ${stages} seed ${seed}`);
        assert.equal(simulate(computes, stages, 0, rng(seed), false, { deferLimit: stages }), true, `stages ${stages} seed ${seed}`);
      }
    }
  });

  test('2 consumers, OWN_TURNS: turns through the paired own steps finish under random schedules (with and without DEFER_PV)', () => {
    const r = rng(77);
    for (let trial = 0; trial < 400; trial++) {
      // The kernel's class order: shared steps, pairs of own steps (0's, then 1's), then one class's rest.
      const all = Math.floor(r() * 4) * (trial % 2), paired = Math.floor(r() * 5), rest = Math.floor(r() * 4), restOwner = trial % 3 === 0 ? 1 : 0;
      const computes = [0, 1].map((wg) => [
        ...Array.from({ length: all }, () => true),
        ...Array.from({ length: 2 * paired }, (_, i) => i % 2 === wg),
        ...Array.from({ length: rest }, () => wg === restOwner),
      ]);
      if (computes[0].length === 0) continue;
      assert.equal(pairedOwnSteps(computes, all), paired);
      const stages = 2 + (trial % 3);
      const deferLimit = trial % 4 < 2 ? stages : undefined;
      assert.ok(simulate(computes, stages, all, r, false, { pairedOwn: paired, deferLimit }), `deadlock: stages ${stages}, all ${all}, paired ${paired}, rest ${rest}`);
    }
  });

  test('2 consumers, OWN_TURNS and DEFER_PV: finish on the step lists of real selections', () => {
    const sel = randomSelection(1500, 16, 1, 9);
    const lists = packChunkLists(sel);
    for (const blockN of [64, 128] as const) {
      const geo = wgmmaStepGeometry(1500, 1, lists.stride, 16, blockN, 2);
      const r = rng(8);
      let pairsSeen = 0;
      for (let cr = 0; cr < geo.numCtaRows; cr++) {
        const entries = wgmmaCtaSteps(lists, 1500, geo, 0, cr);
        if (entries.length === 0) continue;
        const computes = computesOf(entries, geo.subTiles, 2);
        const all = wgmmaStepsAll(entries, geo.subTiles, 2);
        const paired = pairedOwnSteps(computes, all);
        pairsSeen += paired;
        for (const stages of [2, 3]) {
          assert.ok(simulate(computes, stages, all, r, false, { pairedOwn: paired, deferLimit: stages }), `deadlock in CTA ${cr}, stages ${stages}`);
        }
      }
      assert.ok(pairsSeen > 0, 'the selection has paired own steps');
    }
  });

  test('3 consumers: a skipped step that keeps its pending P·V deadlocks in the model (the flush is needed)', () => {
    // Warpgroup 0 computes step 0, skips steps 1-3 holding V0, computes step 4: the producer's V2 (stage
    // 0 again) waits for V0's release, which waits for K4, which comes after V2 and V3.
    const computes = [[true, false, false, false, true], [true, true, true, true, true], [true, true, false, true, true]];
    for (let seed = 0; seed < 20; seed++) {
      assert.equal(simulate(computes, 2, 0, rng(seed), true), false, `seed ${seed}`);
      assert.equal(simulate(computes, 2, 0, rng(seed)), true, `seed ${seed}`);
    }
  });
});

describe('wgmma block-sparse CTA order (the kernel\'s block_sparse_cta_coords)', () => {
  const grids = [{ rows: 5, H: 8, Hkv: 2 }, { rows: 7, H: 32, Hkv: 8 }, { rows: 3, H: 4, Hkv: 4 }, { rows: 4, H: 6, Hkv: 1 }];
  for (const order of ['heads', 'kv'] as const) {
    test(`${order}: every (CTA row, head) exactly once, longest-first rows within each head`, () => {
      for (const g of grids) {
        const seen = new Set<number>();
        const lastRowOf = new Map<number, number>();
        for (let i = 0; i < g.rows * g.H; i++) {
          const { cr, h } = wgmmaCtaOfLaunch(order, i, g.rows, g.H, g.Hkv);
          assert.ok(cr >= 0 && cr < g.rows && h >= 0 && h < g.H, `block ${i} -> (${cr}, ${h}) outside the grid`);
          seen.add(h * g.rows + cr);
          assert.ok(cr < (lastRowOf.get(h) ?? g.rows), `head ${h}: row ${cr} after row ${lastRowOf.get(h)}`);
          lastRowOf.set(h, cr);
        }
        assert.equal(seen.size, g.rows * g.H, `${order} ${JSON.stringify(g)}: not a bijection`);
      }
    });
  }

  test('kv: each KV head\'s blocks are one contiguous run, its query heads interleaved row by row', () => {
    for (const g of grids) {
      const group = g.H / g.Hkv;
      for (let i = 0; i < g.rows * g.H; i++) {
        const { cr, h } = wgmmaCtaOfLaunch('kv', i, g.rows, g.H, g.Hkv);
        assert.equal(Math.floor(h / group), Math.floor(i / (g.rows * group)), `block ${i}: KV head`);
        assert.equal(h % group, i % group, `block ${i}: query head within the group`);
        assert.equal(cr, g.rows - 1 - Math.floor((i % (g.rows * group)) / group), `block ${i}: row`);
      }
    }
    // heads: the first H blocks are the last row of every head (all KV heads at once).
    assert.deepEqual(Array.from({ length: 8 }, (_, i) => wgmmaCtaOfLaunch('heads', i, 5, 8, 2)), Array.from({ length: 8 }, (_, h) => ({ cr: 4, h })));
  });

  test('bad grids and blocks are refused', () => {
    assert.throws(() => wgmmaCtaOfLaunch('kv', 0, 4, 6, 4), /6 heads are not a multiple of 4 KV heads/);
    assert.throws(() => wgmmaCtaOfLaunch('kv', 24, 4, 6, 2), /block 24 outside a grid of 4 x 6/);
  });
});

describe('block-sparse kernel choice', () => {
  const hopper = { computeCapability: [9, 0] as [number, number], name: 'H100' };
  const ampere = { computeCapability: [8, 0] as [number, number], name: 'A100' };

  test('no option: wgmma with the automatic tiling on Hopper at head dims 64 and 128', () => {
    for (const D of [64, 128]) {
      assert.deepEqual(blockSparseKernelChoice(hopper, D, {}), { kernel: 'wgmma', tiling: 'auto' });
    }
    assert.deepEqual(resolveBlockSparseWgmmaTiling(AUTO_BLOCK_SPARSE_WGMMA_TILING), AUTO_BLOCK_SPARSE_WGMMA_TILING);
    assert.deepEqual(resolveBlockSparseWgmmaTiling(AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING), AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING);
    assert.equal(AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING.consumers, 3);
  });

  test('the automatic tiling: 192-row CTAs for lists of at most a fifth of the chunks (the bench\'s s >= 0.8), 128-row ones above', () => {
    // The bench's t at 16K / 64K (B = 1024 / 4096 chunks of 16): s = 0.5 → 300 / 1200, s = 0.8 → 108 / 432.
    const lists = (stride: number, numChunks: number) => ({ stride, numChunks, numTokens: numChunks * 16 });
    assert.equal(chunkListsAreSparse(lists(300, 1024)), false);
    assert.equal(chunkListsAreSparse(lists(1200, 4096)), false);
    for (const [stride, numChunks] of [[108, 1024], [53, 1024], [26, 1024], [432, 4096], [104, 4096]]) {
      assert.equal(chunkListsAreSparse(lists(stride, numChunks)), true, `t = ${stride} of ${numChunks}`);
    }
    assert.equal(chunkListsAreSparse({ stride: 20, numChunks: 100, numTokens: 1600 }), true);
    assert.equal(chunkListsAreSparse({ stride: 21, numChunks: 100, numTokens: 1600 }), false);
  });

  test('the automatic tiling in the heads-major order past 64K tokens: 128-row CTAs again for lists of at most 1/32 of the chunks', () => {
    // The bench's t at 32K / 128K (B = 2048 / 8192): s = 0.8 → 216 / 865, 0.9 → 105 / 420, 0.95 → 52 / 207.
    const lists = (stride: number, numChunks: number) => ({ stride, numChunks, numTokens: numChunks * 16 });
    for (const [stride, numChunks] of [[216, 2048], [105, 2048], [52, 2048], [865, 8192], [420, 8192]]) {
      assert.equal(chunkListsAreSparse(lists(stride, numChunks), 'heads'), true, `t = ${stride} of ${numChunks}`);
    }
    assert.equal(chunkListsAreSparse(lists(207, 8192), 'heads'), false, '128K s = 0.95');
    assert.equal(chunkListsAreSparse(lists(104, 4096), 'heads'), true, '64K s = 0.95: 64K tokens is not past the bound');
    // The bounds themselves: 1/32 of the chunks is still very sparse; 64K + 1 tokens is long.
    assert.equal(chunkListsAreSparse({ stride: 128, numChunks: 4097, numTokens: 65537 }, 'heads'), false);
    assert.equal(chunkListsAreSparse({ stride: 129, numChunks: 4097, numTokens: 65537 }, 'heads'), true);
    assert.equal(chunkListsAreSparse({ stride: 128, numChunks: 4096, numTokens: 65536 }, 'heads'), true);
  });

  test('the default order is KV-head-major, with no long-context exception: 192-row CTAs for every list of at most a fifth of the chunks', () => {
    assert.equal(AUTO_BLOCK_SPARSE_WGMMA_TILING.ctaOrder, 'kv');
    assert.equal(AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING.ctaOrder, 'kv');
    const lists = (stride: number, numChunks: number) => ({ stride, numChunks, numTokens: numChunks * 16 });
    assert.equal(chunkListsAreSparse(lists(207, 8192)), true, '128K s = 0.95');
    assert.equal(chunkListsAreSparse(lists(207, 8192), 'kv'), true);
    assert.equal(chunkListsAreSparse({ stride: 128, numChunks: 4097, numTokens: 65537 }), true);
    assert.equal(chunkListsAreSparse(lists(1200, 4096)), false, 'dense-ish lists keep 128-row CTAs');
  });

  test('dense-ish lists take 192-row CTAs too in the KV-head-major order on grids of at least 16 waves (measured at 32 heads, 16K-128K)', () => {
    const lists = (stride: number, numChunks: number) => ({ stride, numChunks, numTokens: numChunks * 16 });
    // 32 heads: 16K (2,752 CTAs of 192 rows, 20.8 waves on 132 SMs) and 128K at s = 0.5 are dense-ish lists.
    assert.equal(autoTakes192RowTiling(lists(300, 1024), 32, 132), true, '16K s = 0.5, 32 heads');
    assert.equal(autoTakes192RowTiling(lists(2400, 8192), 32, 132), true, '128K s = 0.5, 32 heads');
    assert.equal(autoTakes192RowTiling(lists(300, 1024), 32, 132, 'heads'), false, 'the heads-major order keeps its rule');
    // The organism (4 heads) at 16K: 344 CTAs, 2.6 waves: 128-row CTAs for dense-ish lists.
    assert.equal(autoTakes192RowTiling(lists(300, 1024), 4, 132), false, 'organism 16K s = 0.5');
    assert.equal(autoTakes192RowTiling(lists(100, 1024), 4, 132), true, 'sparse lists: 192 rows at any grid');
    // The bound: 16 waves of 132 SMs = 2,112 CTAs; 32 heads x 66 rows of 192 = 2,112 (12,672 tokens).
    assert.equal(autoTakes192RowTiling({ stride: 700, numChunks: 792, numTokens: 12672 }, 32, 132), true);
    assert.equal(autoTakes192RowTiling({ stride: 700, numChunks: 780, numTokens: 12480 }, 32, 132), false);
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

  test('at 3 consumers it counts what the kernel\'s own step lists compute', () => {
    for (const [mode, seed] of [['random', 11], ['shared', 12]] as const) {
      const n = 1500, sel = randomSelection(n, 16, 1, seed, mode);
      const lists = packChunkLists(sel);
      const geo = wgmmaStepGeometry(n, 1, lists.stride, 16, 64, 3);
      for (let cr = 0; cr < geo.numCtaRows; cr++) {
        const entries = wgmmaCtaSteps(lists, n, geo, 0, cr);
        const w = groupedCtaWork(ctaTileMasksForSlots(lists, n, 0, cr, 12), 3, geo.subTiles);
        assert.deepEqual(w.computed, wgmmaComputedSteps(entries, geo.subTiles, 3), `${mode} CTA ${cr}`);
        assert.equal(w.tiles, entries.filter((e) => wgmmaEntryMask(e, 3) !== 0).length);
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
