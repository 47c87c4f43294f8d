/**
 * The guided count search (CountSearchOptions.guidedProbes, session 7) on the device: its model
 * (vs_guide_gains + vs_guide_scan) against a host computation from the same device ranks, bit for
 * bit; and its searches against the unguided batched search and the one-probe search on the same
 * scores: the same counts, floor verdict and pairs and probes (only the rounds differ), at 1-4 levels
 * and with the methods' default walk (one lane, column bitmap), on decaying and spread scores, n = 50
 * to 20011, s = 0 to 0.999, H = 2-4 and 32; FlexPrefill's alpha search is untouched by the option
 * (the same answers and rounds). Also the column bitmaps read off the ranks (bitmapFromRanks), and the
 * two-level column bitmap (coarseColumnBitmap) past n = 131,040, alone, guided and from the ranks; and the guided
 * layout predicting from line thresholds (guideThresholds, session 8) beside every guided case. Skipped where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FlexPrefillCoverage } from '../../src/backends/cuda/kernels/flexprefill-coverage.js';
import { type CountSearchOptions, VerticalSlashCountSearch } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import { DEFAULT_COUNT_SEARCH } from '../../src/backends/cuda/methods/vertical-slash.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { randomGenerator } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA vertical-slash guided count search tests');

/** The methods' search without this session's options (the reference the variants must match, whatever the default). */
const UNGUIDED: CountSearchOptions = {
  ...DEFAULT_COUNT_SEARCH, guidedProbes: false, coarseColumnBitmap: false, bitmapFromRanks: false, leanLayout: false, orderedSelect: false,
  selectionHandOff: false, deferredIndexWait: false,
};

/** Score rows [H, n]: 'decaying' (heavy sinks and columns, diagonal mass decaying, quantised ties) or 'spread' (uniform). */
function scoreRows(n: number, H: number, seed: number, kind: 'decaying' | 'spread'): { vertical: Float32Array; slash: Float32Array } {
  const rand = randomGenerator(seed);
  const u = () => (rand() + 1) / 2;
  const vertical = new Float32Array(H * n), slash = new Float32Array(H * n);
  for (let h = 0; h < H; h++) {
    for (let j = 0; j < n; j++) {
      if (kind === 'spread') {
        vertical[h * n + j] = u();
        slash[h * n + j] = u();
        continue;
      }
      const heavy = j < 4 || u() < 0.02 ? 50 * (1 + u()) : 1;
      vertical[h * n + j] = Math.round(heavy * Math.exp(u()) * 32) / 32;
      slash[h * n + j] = Math.round((heavy + 100 * Math.exp(-j / (16 + 64 * h))) * Math.exp(u()) * 32) / 32;
    }
  }
  return { vertical, slash };
}

/** The model vs_guide_gains + vs_guide_scan must produce, from the ranks [2H, n] (rank of each item). */
function hostGuide(ranks: Int32Array, n: number, H: number): Float64Array {
  const g = new Float64Array(3 * (n + 1));
  const weighted = new Float64Array(2 * n), width = new Float64Array(n);  // per rank, summed over heads
  for (let row = 0; row < 2 * H; row++) {
    const rank = ranks.subarray(row * n, (row + 1) * n);
    for (let i = 0; i < n; i++) {
      const r = rank[i];
      if (row < H) {
        weighted[r] += n - i;
        continue;
      }
      let lo = Math.max(i - 32, 0), hi = Math.min(i + 32, n);
      for (let d = 1; d < 64; d++) {
        if (i - d >= 0 && rank[i - d] < r) { lo = Math.max(lo, i - d + 32); break; }
      }
      for (let d = 1; d < 64; d++) {
        if (i + d < n && rank[i + d] < r) { hi = Math.min(hi, i + d - 32); break; }
      }
      const w = Math.max(hi - lo, 0);
      weighted[n + r] += w * (n - i);
      width[r] += w;
    }
  }
  for (let k = 0; k < n; k++) {
    g[k + 1] = g[k] + weighted[k];
    g[n + 1 + k + 1] = g[n + 1 + k] + weighted[n + k];
    g[2 * (n + 1) + k + 1] = g[2 * (n + 1) + k] + width[k];
  }
  return g;
}

describe('CUDA vertical-slash guided count search', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  const withScores = (n: number, H: number, seed: number, kind: 'decaying' | 'spread', body: (scores: { n: number; vertical: bigint; slash: bigint }) => void) => {
    const { vertical, slash } = scoreRows(n, H, seed, kind);
    const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
    rt.cuda.upload(dv.ptr, vertical);
    rt.cuda.upload(ds.ptr, slash);
    try {
      body({ n, vertical: dv.ptr, slash: ds.ptr });
    } finally {
      rt.pool.release(dv);
      rt.pool.release(ds);
    }
  };

  for (const c of [{ n: 50, H: 2 }, { n: 1000, H: 3 }, { n: 4096, H: 4 }, { n: 20_011, H: 2 }]) {
    test(`n=${c.n} H=${c.H}: the guide equals the host's from the same ranks, bit for bit; its totals are exact`, () => {
      const { n, H } = c;
      for (const kind of ['decaying', 'spread'] as const) {
        withScores(n, H, 11 + n, kind, (scores) => {
          const search = new VerticalSlashCountSearch(rt, H, { probeLevels: 1, guidedProbes: true });
          try {
            const ptr = search.guide(scores);
            rt.synchronize();
            const got = new Float64Array(3 * (n + 1)), ranks = new Int32Array(2 * H * n);
            rt.cuda.download(got, ptr);
            const ranksPtr = search.ranksOf(scores);
            assert.ok(ranksPtr !== null);
            rt.cuda.download(ranks, ranksPtr);
            const want = hostGuide(ranks, n, H);
            for (let j = 0; j < got.length; j++) assert.equal(got[j], want[j], `${kind}: guide[${j}]`);
            // Every column kept: each attends n - c pairs; every offset kept: the bands tile [0, n).
            assert.equal(got[n], (H * n * (n + 1)) / 2, `${kind}: col[n]`);
            assert.equal(got[3 * (n + 1) - 1], H * n, `${kind}: width[n]`);
          } finally {
            search.release();
          }
        });
      }
    });
  }

  const sparsities = [0, 0.5, 0.8, 0.9, 0.95, 0.999];
  const guidedVariants: CountSearchOptions[] = [
    ...[1, 2, 3, 4].map((probeLevels) => ({ probeLevels, guidedProbes: true })),
    { ...UNGUIDED, guidedProbes: true },
    { ...UNGUIDED, bitmapFromRanks: true },
    { ...UNGUIDED, guidedProbes: true, bitmapFromRanks: true },
    { ...UNGUIDED, guidedProbes: true, guideThresholds: true },
    { ...UNGUIDED, guidedProbes: true, leanLayout: true },
    { ...UNGUIDED, guidedProbes: true, leanLayout: true, orderedSelect: true },
  ];
  for (const c of [{ n: 50, H: 2 }, { n: 1000, H: 3 }, { n: 4096, H: 4 }, { n: 16_384, H: 4 }, { n: 20_011, H: 2 }]) {
    test(`n=${c.n} H=${c.H}: guided searches answer as the unguided and one-probe searches (decaying and spread scores)`, () => {
      const { n, H } = c;
      for (const kind of ['decaying', 'spread'] as const) {
        withScores(n, H, 5 + n, kind, (scores) => {
          const one = new VerticalSlashCountSearch(rt, H);
          const plain = new VerticalSlashCountSearch(rt, H, UNGUIDED);
          const guided = guidedVariants.map((o) => new VerticalSlashCountSearch(rt, H, o));
          const coverage = new FlexPrefillCoverage(rt, H);
          try {
            coverage.build(scores, 1 / Math.min(512, n));
            const rounds: string[] = [];
            for (const s of sparsities) {
              const want = one.counts(scores, s);
              const reference = plain.counts(scores, s);
              assert.deepEqual({ ...reference, rounds: 0 }, { ...want, rounds: 0 }, `${kind} s=${s}: default vs one-probe`);
              guided.forEach((g, i) => {
                const got = g.counts(scores, s);
                assert.deepEqual({ ...got, rounds: 0 }, { ...want, rounds: 0 }, `${kind} s=${s} ${JSON.stringify(guidedVariants[i])}: vertical-slash search`);
                assert.ok(got.rounds >= 1 && got.rounds <= want.probes, `${kind} s=${s}: ${got.rounds} rounds for ${want.probes} probes`);
              });
              rounds.push(`s=${s}: ${want.probes} probes, default ${reference.rounds} rounds, guided ${guided.map((g) => g.counts(scores, s).rounds).join('/')}`);
              // FlexPrefill's alpha search does not take the guided tree: the same answers and rounds.
              const wantAlpha = plain.alpha(scores, coverage.curvesPtr, s, 64);
              const gotAlpha = guided[guided.length - 1].alpha(scores, coverage.curvesPtr, s, 64);
              assert.deepEqual(gotAlpha, wantAlpha, `${kind} s=${s}: alpha search`);
            }
            console.log(`# n=${n} H=${H} ${kind}: ${rounds.join('; ')}`);
          } finally {
            one.release();
            plain.release();
            for (const g of guided) g.release();
            coverage.release();
          }
        });
      }
    });
  }

  // Past n = 131,040 the one-level column bitmap does not fit a walk unit's stage: the default runs the
  // plain batched kernel there; coarseColumnBitmap stages the two-level bitmap instead (alone and guided).
  test('n=140000 H=2: the two-level column bitmap (alone and guided) answers as the default and the one-probe search', () => {
    const n = 140_000, H = 2;
    for (const kind of ['decaying', 'spread'] as const) {
      withScores(n, H, 21, kind, (scores) => {
        const one = new VerticalSlashCountSearch(rt, H);
        const plain = new VerticalSlashCountSearch(rt, H, UNGUIDED);
        const variants: CountSearchOptions[] = [
          { ...UNGUIDED, coarseColumnBitmap: true },
          { ...UNGUIDED, coarseColumnBitmap: true, guidedProbes: true },
          { ...UNGUIDED, coarseColumnBitmap: true, bitmapFromRanks: true },
          { ...UNGUIDED, coarseColumnBitmap: true, guidedProbes: true, bitmapFromRanks: true },
          { ...UNGUIDED, coarseColumnBitmap: true, guidedProbes: true, guideThresholds: true },
        ];
        const searches = variants.map((o) => new VerticalSlashCountSearch(rt, H, o));
        try {
          for (const s of [0.5, 0.9, 0.99]) {
            const want = one.counts(scores, s);
            assert.deepEqual({ ...plain.counts(scores, s), rounds: 0 }, { ...want, rounds: 0 }, `${kind} s=${s}: default`);
            searches.forEach((search, i) => {
              assert.deepEqual({ ...search.counts(scores, s), rounds: 0 }, { ...want, rounds: 0 }, `${kind} s=${s}: ${JSON.stringify(variants[i])}`);
            });
          }
        } finally {
          one.release();
          plain.release();
          for (const search of searches) search.release();
        }
      });
    }
  });

  test('H=32 n=16384: the default search with the guided tree answers as without it', () => {
    const n = 16_384, H = 32;
    withScores(n, H, 9, 'decaying', (scores) => {
      const plain = new VerticalSlashCountSearch(rt, H, UNGUIDED);
      const guided = new VerticalSlashCountSearch(rt, H, { ...UNGUIDED, guidedProbes: true });
      const guidedRanked = new VerticalSlashCountSearch(rt, H, { ...UNGUIDED, guidedProbes: true, bitmapFromRanks: true });
      const thresholds = new VerticalSlashCountSearch(rt, H, { ...UNGUIDED, guidedProbes: true, guideThresholds: true });
      try {
        for (const s of [0.5, 0.9, 0.95]) {
          const want = plain.counts(scores, s), got = guided.counts(scores, s), both = guidedRanked.counts(scores, s);
          const fromThresholds = thresholds.counts(scores, s);
          assert.deepEqual({ ...got, rounds: 0 }, { ...want, rounds: 0 }, `s=${s}`);
          assert.deepEqual(both, got, `s=${s}: guided with the bitmaps from the ranks`);
          assert.deepEqual({ ...fromThresholds, rounds: 0 }, { ...want, rounds: 0 }, `s=${s}: guided with thresholds`);
          console.log(`# H=32 n=16384 s=${s}: ${want.probes} probes, default ${want.rounds} rounds, guided ${got.rounds}, thresholds ${fromThresholds.rounds}`);
        }
      } finally {
        plain.release();
        guided.release();
        guidedRanked.release();
        thresholds.release();
      }
    });
  });
});
