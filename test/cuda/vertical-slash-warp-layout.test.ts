/**
 * The lean guided layout run by one warp (CountSearchOptions.warpLayout, session 9): on the CPU, the
 * option's refusals; on the device (skipped without one), the warp-laid search answers exactly as the
 * lean ordered search it replaces, rounds and probes included (the same trees give the same rounds; the
 * host harness, vertical-slash-search-guided-host, compares the trees themselves), with and without the
 * selection hand-off, whose handed-off selection must be the same too. Scores with ties and NaN and
 * bench-like flat / peaked rows; n from below one block to past the one-level bitmap; H 1-32.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { scoreRows } from '../../bench/vertical-slash-estimation.js';
import { type CountSearchOptions, VerticalSlashCountSearch } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import { DEFAULT_COUNT_SEARCH } from '../../src/backends/cuda/methods/vertical-slash.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { cudaSkip } from './cuda-skip.js';
import { tiedScores } from './vertical-slash-index-util.js';

const LEAN_ORDER: CountSearchOptions = { ...DEFAULT_COUNT_SEARCH, leanLayout: true, orderedSelect: true, warpLayout: false, selectionHandOff: false };

describe('count search warpLayout option (CPU)', () => {
  const rt = {} as CudaRuntime;
  test('needs leanLayout, and orderedSelect with the selection hand-off', () => {
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...DEFAULT_COUNT_SEARCH, warpLayout: true }), /warpLayout needs leanLayout/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...DEFAULT_COUNT_SEARCH, deviceHandOff: true, leanLayout: true, selectionHandOff: true, warpLayout: true }),
      /warpLayout with selectionHandOff needs orderedSelect/);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...DEFAULT_COUNT_SEARCH, leanLayout: true, warpLayout: true }).warpLayout, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...DEFAULT_COUNT_SEARCH, leanLayout: true, timeRounds: true, warpLayout: true }).warpLayout, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...LEAN_ORDER, warpLayout: true }).warpLayout, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, LEAN_ORDER).warpLayout, false);
  });
});

const skip = cudaSkip('CUDA vertical-slash warp layout tests');

describe('CUDA vertical-slash count search: the warp layout against the lean one', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  const cases = [
    { n: 50, H: 2, rows: 'tied' }, { n: 1000, H: 3, rows: 'tied' }, { n: 4096, H: 4, rows: 'peaked' }, { n: 16_384, H: 4, rows: 'flat' },
    { n: 16_384, H: 32, rows: 'peaked' }, { n: 20_011, H: 2, rows: 'tied' }, { n: 140_000, H: 1, rows: 'peaked' },
  ] as const;
  for (const c of cases) {
    test(`n=${c.n} H=${c.H} (${c.rows} rows): the same answers, probes and rounds, and the same handed-off selection`, () => {
      const { n, H } = c;
      const { vertical, slash } = c.rows === 'tied' ? tiedScores(n, H, 5 + n, 1) : scoreRows(n, c.rows, n + H, H);
      const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
      rt.cuda.upload(dv.ptr, vertical);
      rt.cuda.upload(ds.ptr, slash);
      const scores = { n, vertical: dv.ptr, slash: ds.ptr };
      const lean = new VerticalSlashCountSearch(rt, H, LEAN_ORDER);
      const warp = new VerticalSlashCountSearch(rt, H, { ...LEAN_ORDER, warpLayout: true });
      const warpUnordered = new VerticalSlashCountSearch(rt, H, { ...LEAN_ORDER, orderedSelect: false, warpLayout: true });
      const leanHandOff = new VerticalSlashCountSearch(rt, H, { ...LEAN_ORDER, selectionHandOff: true });
      const warpHandOff = new VerticalSlashCountSearch(rt, H, { ...LEAN_ORDER, selectionHandOff: true, warpLayout: true });
      try {
        let rounds = 0;
        for (const s of [0, 0.5, 0.8, 0.9, 0.95, 0.999]) {
          const want = lean.counts(scores, s);
          assert.deepEqual(warp.counts(scores, s), want, `s=${s}: the warp-laid search's outcome (rounds included)`);
          assert.deepEqual(warpUnordered.counts(scores, s), want, `s=${s}: the warp-laid search without ordered selections`);
          assert.deepEqual(leanHandOff.counts(scores, s), want, `s=${s}: the lean hand-off's outcome`);
          assert.deepEqual(warpHandOff.counts(scores, s), want, `s=${s}: the warp-laid hand-off's outcome`);
          rounds += want.rounds;
          const a = leanHandOff.selectionOf(scores), b = warpHandOff.selectionOf(scores);
          assert.equal(b === null, a === null, `s=${s}: the warp hand-off names a slot exactly where the lean one does`);
          if (a === null || b === null) continue;
          const countsA = new Int32Array(2 * H), countsB = new Int32Array(2 * H), offA = new Int32Array(n), offB = new Int32Array(n);
          const colA = new Int32Array(n), colB = new Int32Array(n);
          rt.synchronize();
          rt.cuda.download(countsA, a.counts);
          rt.cuda.download(countsB, b.counts);
          rt.cuda.download(offA, a.offsets);
          rt.cuda.download(offB, b.offsets);
          rt.cuda.download(colA, a.columns);
          rt.cuda.download(colB, b.columns);
          assert.deepEqual([...countsB], [...countsA], `s=${s}: the handed-off counts`);
          assert.deepEqual([...offB.subarray(0, want.slashSize)], [...offA.subarray(0, want.slashSize)], `s=${s}: head 0's handed-off offsets`);
          assert.deepEqual([...colB.subarray(0, Math.min(want.verticalSize, n))], [...colA.subarray(0, Math.min(want.verticalSize, n))],
            `s=${s}: head 0's handed-off columns`);
        }
        console.log(`# n=${n} H=${H} ${c.rows}: ${rounds} rounds over 6 searches, warp = lean`);
      } finally {
        rt.synchronize();
        for (const x of [lean, warp, warpUnordered, leanHandOff, warpHandOff]) x.release();
        rt.pool.release(dv);
        rt.pool.release(ds);
      }
    });
  }
});
