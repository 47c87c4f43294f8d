/**
 * The device-resident count searches (kernels/vertical-slash-search.cu) against their host twins on
 * the same device scores: Vertical-Slash's chooseVerticalSlashCounts and FlexPrefill's alpha
 * bisection (thresholdNearestTarget over FlexPrefillCoverage sizes), each host probe answered by
 * VerticalSlashIndexBuilder.countPairs. Same counts, same alpha bit for bit, same floor verdict, over
 * target sparsities from 0 (everything) to one the forced floor cannot meet, partial last blocks,
 * prompts shorter than one block and several heads; the batched search at 1-5 levels and with its
 * block walks shared by several threads (walkLanes) against the one-probe search. Skipped where
 * there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FlexPrefillCoverage } from '../../src/backends/cuda/kernels/flexprefill-coverage.js';
import { VerticalSlashIndexBuilder } from '../../src/backends/cuda/kernels/vertical-slash-index.js';
import { type CountSearchOptions, VerticalSlashCountSearch } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { chooseVerticalSlashCounts } from '../../src/backends/cuda/vertical-slash-counts.js';
import { thresholdNearestTarget } from '../../src/methods/flexprefill.js';
import { causalPairs } from '../../src/methods/options.js';
import { randomGenerator } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA vertical-slash count search tests');

/**
 * Attention-like scores per head [H, n]: heavy sinks and a few heavy columns; diagonal mass decaying
 * with the offset (as after a softmax of the last queries), ties included (quantised values).
 */
function syntheticScores(n: number, H: number, seed: number): { vertical: Float32Array; slash: Float32Array } {
  const rand = randomGenerator(seed);
  const vertical = new Float32Array(H * n), slash = new Float32Array(H * n);
  for (let h = 0; h < H; h++) {
    for (let j = 0; j < n; j++) {
      const heavy = j < 4 || rand() < 0.02 ? 50 * (1 + rand()) : 1;
      vertical[h * n + j] = Math.round(heavy * Math.exp(rand()) * 32) / 32;
      slash[h * n + j] = Math.round((heavy + 100 * Math.exp(-j / (16 + 64 * h))) * Math.exp(rand()) * 32) / 32;
    }
  }
  return { vertical, slash };
}

describe('CUDA vertical-slash count searches vs their host twins', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  const cases = [
    { n: 50, H: 2, seed: 1 },     // shorter than one 64-row block
    { n: 1000, H: 3, seed: 2 },   // partial last block
    { n: 4096, H: 4, seed: 3 },
    { n: 20_011, H: 2, seed: 4 },
  ];
  const sparsities = [0, 0.5, 0.8, 0.95, 0.999];

  for (const c of cases) {
    test(`n=${c.n} H=${c.H}: same counts and alpha at s = ${sparsities.join(', ')}`, () => {
      const { n, H } = c;
      const { vertical, slash } = syntheticScores(n, H, c.seed);
      const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
      rt.cuda.upload(dv.ptr, vertical);
      rt.cuda.upload(ds.ptr, slash);
      const scores = { n, vertical: dv.ptr, slash: ds.ptr };
      const builder = new VerticalSlashIndexBuilder(rt, H);
      const search = new VerticalSlashCountSearch(rt, H);
      const coverage = new FlexPrefillCoverage(rt, H);
      const layerPairs = (kv: Int32Array, ks: Int32Array) => builder.countPairs(scores, { vertical: kv, slash: ks }).reduce((a, b) => a + b, 0);
      try {
        const A = Math.min(512, n);
        coverage.build(scores, 1 / A);
        for (const s of sparsities) {
          // Vertical-Slash.
          const host = chooseVerticalSlashCounts(n, H, s, (kv, ks) => layerPairs(new Int32Array(H).fill(kv), new Int32Array(H).fill(ks)));
          const device = search.counts(scores, s);
          assert.deepEqual([device.verticalSize, device.slashSize], [host.verticalSize, host.slashSize], `s=${s}: vertical-slash counts`);
          assert.equal(device.floor === 'exceeds', host.note !== undefined, `s=${s}: floor verdict`);
          if (s === 0) {
            const kept = layerPairs(new Int32Array(H).fill(device.verticalSize), new Int32Array(H).fill(device.slashSize));
            assert.equal(kept, H * causalPairs(n), 's=0 keeps every causal pair');
          }

          // FlexPrefill, with a min budget small enough for the search to matter.
          for (const minBudget of [1, 64]) {
            const target = (1 - s) * H * causalPairs(n);
            const pairsAt = (alpha: number) => {
              const counts = coverage.sizes(alpha, minBudget);
              return layerPairs(counts.vertical, counts.slash);
            };
            const floor = pairsAt(0);
            const hostAlpha = floor >= target ? 0 : thresholdNearestTarget(pairsAt, target, floor);
            const found = search.alpha(scores, coverage.curvesPtr, s, minBudget);
            assert.ok(Object.is(found.alpha, hostAlpha), `s=${s} min ${minBudget}: alpha ${found.alpha}, host ${hostAlpha}`);
            assert.equal(found.floorPairs, floor, `s=${s} min ${minBudget}: floor pairs`);
            assert.equal(found.floor, floor > target ? 'exceeds' : floor === target ? 'meets' : 'below', `s=${s} min ${minBudget}: floor verdict`);
          }
        }
      } finally {
        builder.release();
        search.release();
        coverage.release();
        rt.pool.release(dv);
        rt.pool.release(ds);
      }
    });
  }

  // The batched kernel (probeLevels) answers the same probes in the same order: the same result,
  // floor and probe count as the one-probe-at-a-time kernel, for every tree depth, on the same ranks
  // (H = 4: 31 probes x 8 rows fit the kernel's counts at 5 levels; H <= 3 as well).
  for (const c of [...cases, { n: 16_384, H: 4, seed: 5 }]) {
    test(`n=${c.n} H=${c.H}: the batched search (1-5 levels per round) gives the one-probe search's answers`, () => {
      const { n, H } = c;
      const { vertical, slash } = syntheticScores(n, H, c.seed);
      const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
      rt.cuda.upload(dv.ptr, vertical);
      rt.cuda.upload(ds.ptr, slash);
      const scores = { n, vertical: dv.ptr, slash: ds.ptr };
      const one = new VerticalSlashCountSearch(rt, H);
      const levels = [1, 2, 3, 4, 5];
      const batched = levels.map((probeLevels) => new VerticalSlashCountSearch(rt, H, { probeLevels }));
      const coverage = new FlexPrefillCoverage(rt, H);
      try {
        coverage.build(scores, 1 / Math.min(512, n));
        for (const s of sparsities) {
          const want = one.counts(scores, s);
          batched.forEach((b, i) => {
            const got = b.counts(scores, s);
            assert.deepEqual({ ...got, rounds: 0 }, { ...want, rounds: 0 }, `s=${s} levels ${levels[i]}: vertical-slash search`);
            assert.ok(got.rounds >= Math.ceil(want.probes / levels[i]) && got.rounds <= want.probes, `s=${s} levels ${levels[i]}: ${got.rounds} rounds for ${want.probes} probes`);
          });
          for (const minBudget of [1, 64]) {
            const wantAlpha = one.alpha(scores, coverage.curvesPtr, s, minBudget);
            for (const b of batched) {
              const got = b.alpha(scores, coverage.curvesPtr, s, minBudget);
              assert.ok(Object.is(got.alpha, wantAlpha.alpha), `s=${s} min ${minBudget} levels ${b.probeLevels}: alpha ${got.alpha}, one-probe ${wantAlpha.alpha}`);
              assert.deepEqual({ ...got, rounds: 0 }, { ...wantAlpha, rounds: 0 }, `s=${s} min ${minBudget} levels ${b.probeLevels}: alpha search`);
            }
          }
        }
      } finally {
        one.release();
        for (const b of batched) b.release();
        coverage.release();
        rt.pool.release(dv);
        rt.pool.release(ds);
      }
    });
  }

  // Issue 9's shape (Llama-3.1-8B FlexPrefill in bench/vertical-slash-small-heads: H = 32, n = 16384,
  // min budget 512, so 512 columns and 512 diagonals per head at alpha 0): the batched search at
  // 1..4 levels (the most 64 score rows take) against the one-probe search on the same ranks, and
  // the floor's pairs against the index builder's. s = 0.5 runs a bisection with counts past 4096
  // (vs_mark_runs' carry between its 4096-offset steps).
  test('H=32 n=16384 min budget 512 (issue 9): batched levels 1-4 (and walkLanes) give the one-probe answers and floor pairs', () => {
    const n = 16_384, H = 32, minBudget = 512;
    const { vertical, slash } = syntheticScores(n, H, 9);
    const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
    rt.cuda.upload(dv.ptr, vertical);
    rt.cuda.upload(ds.ptr, slash);
    const scores = { n, vertical: dv.ptr, slash: ds.ptr };
    const one = new VerticalSlashCountSearch(rt, H);
    const levels = [1, 2, 3, 4];
    // Then the same with each block walk shared by threads (walkLanes: auto and 8 at 3 levels).
    const batched = [
      ...levels.map((probeLevels) => new VerticalSlashCountSearch(rt, H, { probeLevels })),
      new VerticalSlashCountSearch(rt, H, { probeLevels: 3, walkLanes: 'auto' }),
      new VerticalSlashCountSearch(rt, H, { probeLevels: 3, walkLanes: 8 }),
      new VerticalSlashCountSearch(rt, H, { probeLevels: 3, walkLanes: 'auto', walkColumnBitmap: true }),
    ];
    const label = (i: number) => (i < levels.length ? `levels ${levels[i]}`
      : `levels 3 walkLanes ${batched[i].walkLanes}${batched[i].walkColumnBitmap ? ' bitmap' : ''}`);
    const coverage = new FlexPrefillCoverage(rt, H);
    const builder = new VerticalSlashIndexBuilder(rt, H);
    try {
      coverage.build(scores, 1 / 512);
      const atZero = coverage.sizes(0, minBudget);
      assert.ok(atZero.slash.every((k) => k === minBudget) && atZero.vertical.every((k) => k === minBudget), 'alpha 0 keeps the min budget in every row');
      const floorPairs = builder.countPairs(scores, atZero).reduce((a, b) => a + b, 0);
      for (const s of [0.9, 0.5]) {
        const want = one.alpha(scores, coverage.curvesPtr, s, minBudget);
        assert.equal(want.floorPairs, floorPairs, `s=${s}: one-probe floor pairs vs the index builder's`);
        batched.forEach((b, i) => {
          const got = b.alpha(scores, coverage.curvesPtr, s, minBudget);
          assert.deepEqual({ ...got, rounds: 0 }, { ...want, rounds: 0 }, `s=${s} ${label(i)}: alpha search (floor pairs ${got.floorPairs} vs ${want.floorPairs})`);
        });
      }
      const want = one.counts(scores, 0.9);
      batched.forEach((b, i) => assert.deepEqual({ ...b.counts(scores, 0.9), rounds: 0 }, { ...want, rounds: 0 }, `${label(i)}: vertical-slash search`));
    } finally {
      one.release();
      for (const b of batched) b.release();
      coverage.release();
      builder.release();
      rt.pool.release(dv);
      rt.pool.release(ds);
    }
  });

  // walkLanes (vs_count_search_batched_lanes): each 64-row block's walk shared by several threads,
  // cut where a range certainly restarts. The same pairs for every probe, so the same answers, floor
  // pairs, probes and rounds as the batched search with one thread per block walk, and the one-probe
  // answers; on the decaying scores above and on spread ones (every score random: kept diagonals all
  // over the row, a range per diagonal, the walks the lanes split most), FlexPrefill's 30 alpha
  // halvings included (each compares a probe's exact pairs with the target).
  for (const c of [{ n: 1000, H: 3, seed: 12 }, { n: 4096, H: 4, seed: 13 }, { n: 16_384, H: 4, seed: 14 }, { n: 20_011, H: 2, seed: 15 }]) {
    test(`n=${c.n} H=${c.H}: walkLanes 1, 4, 32 and auto (and with the column bitmap) give the batched and one-probe answers`, () => {
      const { n, H } = c;
      const rand = randomGenerator(c.seed);
      const spread = { vertical: new Float32Array(H * n), slash: new Float32Array(H * n) };
      for (let i = 0; i < H * n; i++) {
        spread.vertical[i] = Math.round(rand() * 4096) / 4096;
        spread.slash[i] = Math.round(rand() * 4096) / 4096;
      }
      const one = new VerticalSlashCountSearch(rt, H);
      const plain = new VerticalSlashCountSearch(rt, H, { probeLevels: 4 });
      const laneOptions: CountSearchOptions[] = [
        { walkLanes: 1 }, { walkLanes: 4 }, { walkLanes: 32 }, { walkLanes: 'auto' },
        { walkLanes: 1, walkColumnBitmap: true }, { walkLanes: 8, walkColumnBitmap: true }, { walkLanes: 'auto', walkColumnBitmap: true },
      ];
      const laneCounts = laneOptions.map((o) => `${o.walkLanes}${o.walkColumnBitmap ? ' bitmap' : ''}`);
      const lanes = laneOptions.map((o) => new VerticalSlashCountSearch(rt, H, { probeLevels: 4, ...o }));
      const coverage = new FlexPrefillCoverage(rt, H);
      const buffers: ReturnType<CudaRuntime['pool']['acquire']>[] = [];
      try {
        for (const [kind, rows] of [['decaying', syntheticScores(n, H, c.seed)], ['spread', spread]] as const) {
          const dv = rt.pool.acquire(rows.vertical.byteLength), ds = rt.pool.acquire(rows.slash.byteLength);
          buffers.push(dv, ds);
          rt.cuda.upload(dv.ptr, rows.vertical);
          rt.cuda.upload(ds.ptr, rows.slash);
          const scores = { n, vertical: dv.ptr, slash: ds.ptr };
          coverage.build(scores, 1 / Math.min(512, n));
          for (const s of sparsities) {
            const want = plain.counts(scores, s);
            const first = one.counts(scores, s);
            assert.deepEqual({ ...want, rounds: 0 }, { ...first, rounds: 0 }, `${kind} s=${s}: batched vs one-probe`);
            lanes.forEach((b, i) => {
              assert.deepEqual(b.counts(scores, s), want, `${kind} s=${s} walkLanes ${laneCounts[i]}: vertical-slash search`);
            });
            for (const minBudget of [1, 64]) {
              const wantAlpha = plain.alpha(scores, coverage.curvesPtr, s, minBudget);
              lanes.forEach((b, i) => {
                const got = b.alpha(scores, coverage.curvesPtr, s, minBudget);
                assert.ok(Object.is(got.alpha, wantAlpha.alpha), `${kind} s=${s} min ${minBudget} walkLanes ${laneCounts[i]}: alpha ${got.alpha}, batched ${wantAlpha.alpha}`);
                assert.deepEqual(got, wantAlpha, `${kind} s=${s} min ${minBudget} walkLanes ${laneCounts[i]}: alpha search`);
              });
            }
          }
        }
      } finally {
        one.release();
        plain.release();
        for (const b of lanes) b.release();
        coverage.release();
        for (const b of buffers) rt.pool.release(b);
      }
    });
  }

  test('refuses a sparsity outside [0, 1) and a bad min budget', () => {
    const search = new VerticalSlashCountSearch(rt, 2);
    assert.throws(() => search.counts({ n: 10, vertical: 0n, slash: 0n }, 1), /sparsity must be in \[0, 1\)/);
    assert.throws(() => search.alpha({ n: 10, vertical: 0n, slash: 0n }, 0n, 0.5, 0), /minBudget must be a positive integer/);
  });
});
