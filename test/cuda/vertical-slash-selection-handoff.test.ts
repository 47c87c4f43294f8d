/**
 * The count search handing its answer's selection to the index builder (CountSearchOptions.
 * selectionHandOff, session 8): on the CPU, the option's refusals; on the device (skipped without
 * one), the hand-off search answers as the default search (counts, floor, pairs, probes, rounds), and
 * wherever it names a selection (selectionOf), the index built from it in place (RankedRows.selection:
 * no count copy, no selection launch) equals the default build's with the same counts bit for bit:
 * selected columns and offsets, per-block ranges and column lists, exact pairs and list length. Scores
 * with ties and NaN, n from below one block to past the one-level bitmap (two-level there), s 0 to 0.999.
 * Also the index built without its middle host wait (buildDeferred, the method's deferredIndexWait):
 * after settle() the same index as build()'s, from the builder's own selection and from handed-off
 * ranks; null past its column-list bound.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DEFERRED_LIST_MAX_INTS, deferredColumnBound, type VerticalSlashCounts, VerticalSlashIndexBuilder,
} from '../../src/backends/cuda/kernels/vertical-slash-index.js';
import { type CountSearchOptions, VerticalSlashCountSearch } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import { DEFAULT_COUNT_SEARCH } from '../../src/backends/cuda/methods/vertical-slash.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { randomGenerator } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';
import { snapshot, tiedScores } from './vertical-slash-index-util.js';

/** Session 7's default search (whatever the default becomes): the reference the hand-off must match. */
const SESSION7: CountSearchOptions = { ...DEFAULT_COUNT_SEARCH, leanLayout: false, orderedSelect: false, selectionHandOff: false, deferredIndexWait: false };

describe('count search selectionHandOff option (CPU)', () => {
  const rt = {} as CudaRuntime;
  test('needs deviceHandOff and the guided column-bitmap search, without guideThresholds, bitmapFromRanks or timeRounds', () => {
    const refused = /selectionHandOff needs deviceHandOff/;
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { selectionHandOff: true }), refused);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, deviceHandOff: false, selectionHandOff: true }), refused);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, guidedProbes: false, selectionHandOff: true }), refused);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, guideThresholds: true, selectionHandOff: true }), refused);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, bitmapFromRanks: true, selectionHandOff: true }), refused);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...SESSION7, timeRounds: true, selectionHandOff: true }), refused);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...SESSION7, selectionHandOff: true }).selectionHandOff, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, SESSION7).selectionHandOff, false);
  });
});

describe('deferredColumnBound (CPU)', () => {
  test('equals the sum over 64-row blocks of min(kept columns, block end), per head', () => {
    const rand = randomGenerator(5);
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(((rand() + 1) / 2) * 40_000), H = 1 + (trial % 5);
      const vertical = Int32Array.from({ length: H }, () => Math.floor(((rand() + 1) / 2) * (n + 100)) - 20);
      let want = 0;
      for (const c of vertical) {
        const kv = Math.min(Math.max(c, 0), n);
        for (let m = 0; m < Math.ceil(n / 64); m++) want += Math.min(kv, 64 * (m + 1));
      }
      assert.equal(deferredColumnBound(vertical, n), want, `n=${n} counts ${[...vertical]}`);
    }
  });
});

const skip = cudaSkip('CUDA vertical-slash selection hand-off tests');

describe('CUDA vertical-slash selection hand-off', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  for (const c of [{ n: 50, H: 2, nans: 0 }, { n: 1000, H: 3, nans: 3 }, { n: 4096, H: 4, nans: 0 }, { n: 16_384, H: 4, nans: 1 },
    { n: 20_011, H: 2, nans: 0 }, { n: 140_000, H: 1, nans: 0 }]) {
    test(`n=${c.n} H=${c.H}: the hand-off answers as the default search, and its selection builds the default's index`, () => {
      const { n, H } = c;
      const { vertical, slash } = tiedScores(n, H, 31 + n, c.nans);
      const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
      rt.cuda.upload(dv.ptr, vertical);
      rt.cuda.upload(ds.ptr, slash);
      const scores = { n, vertical: dv.ptr, slash: ds.ptr };
      const plain = new VerticalSlashCountSearch(rt, H, SESSION7);
      const handOff = new VerticalSlashCountSearch(rt, H, { ...SESSION7, selectionHandOff: true });
      const leanHandOff = new VerticalSlashCountSearch(rt, H, { ...SESSION7, selectionHandOff: true, leanLayout: true, orderedSelect: true });
      const reference = new VerticalSlashIndexBuilder(rt, H), inPlace = new VerticalSlashIndexBuilder(rt, H);
      let named = 0;
      const sparsities = [0, 0.5, 0.8, 0.9, 0.95, 0.999];
      try {
        for (const s of sparsities) {
          const want = plain.counts(scores, s), got = handOff.counts(scores, s);
          assert.deepEqual(got, want, `s=${s}: the hand-off search's answer`);
          // The lean rounds with ordered selections and the hand-off: the same answer, and the same slots named.
          assert.deepEqual(leanHandOff.counts(scores, s), want, `s=${s}: the lean hand-off search's answer`);
          const leanSelection = leanHandOff.selectionOf(scores);
          assert.equal(handOff.selectionOf({ ...scores }), null, `s=${s}: another scores object has no selection`);
          const selection = handOff.selectionOf(scores);
          assert.equal(leanSelection === null, selection === null, `s=${s}: the lean hand-off names a slot as the plain one does`);
          if (selection === null) continue;
          if (leanSelection !== null) {
            // Slots hold the same selections (the same probes in the same slots); the buffers are the search's own.
            const a = new Int32Array(n), b = new Int32Array(n);
            rt.synchronize();
            rt.cuda.download(a, selection.offsets);
            rt.cuda.download(b, leanSelection.offsets);
            assert.deepEqual([...b.subarray(0, got.slashSize)], [...a.subarray(0, got.slashSize)], `s=${s}: the lean hand-off's head-0 offsets`);
          }
          named++;
          const ranks = handOff.ranksOf(scores);
          assert.ok(ranks !== null);
          const counts: VerticalSlashCounts = { vertical: new Int32Array(H).fill(got.verticalSize), slash: new Int32Array(H).fill(got.slashSize) };
          const device = new Int32Array(2 * H);
          rt.synchronize();
          rt.cuda.download(device, selection.counts);
          assert.deepEqual([...device], [...counts.vertical.map((x) => Math.min(x, n)), ...counts.slash.map((x) => Math.min(x, n))], `s=${s}: the handed-off counts`);
          const wantIndex = snapshot(rt, reference.build(scores, counts));
          // Twice in a row: the second build queues behind the first with no host wait before it.
          inPlace.build(scores, counts, { ranks, counts: selection.counts, selection });
          const gotIndex = snapshot(rt, inPlace.build(scores, counts, { ranks, counts: selection.counts, selection }));
          assert.deepEqual(gotIndex, wantIndex, `s=${s}: the index from the handed-off selection`);
        }
        console.log(`# n=${n} H=${H}: a slot held the answer's selection in ${named} of ${sparsities.length} searches`);
        assert.ok(named > 0, 'no search handed its selection off');
      } finally {
        rt.synchronize();
        plain.release();
        handOff.release();
        leanHandOff.release();
        reference.release();
        inPlace.release();
        rt.pool.release(dv);
        rt.pool.release(ds);
      }
    });
  }

  for (const c of [{ n: 50, H: 2 }, { n: 1000, H: 3 }, { n: 16_384, H: 4 }, { n: 20_011, H: 2 }]) {
    test(`n=${c.n} H=${c.H}: buildDeferred, once settled, is build()'s index`, () => {
      const { n, H } = c;
      const { vertical, slash } = tiedScores(n, H, 77 + n, 1);
      const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
      rt.cuda.upload(dv.ptr, vertical);
      rt.cuda.upload(ds.ptr, slash);
      const scores = { n, vertical: dv.ptr, slash: ds.ptr };
      const search = new VerticalSlashCountSearch(rt, H, { deviceHandOff: true });
      const reference = new VerticalSlashIndexBuilder(rt, H), deferred = new VerticalSlashIndexBuilder(rt, H);
      try {
        const uniform = (kv: number, ks: number): VerticalSlashCounts => ({ vertical: new Int32Array(H).fill(kv), slash: new Int32Array(H).fill(ks) });
        const perHead: VerticalSlashCounts = {
          vertical: Int32Array.from({ length: H }, (_, h) => [3, 70, n, 17][h % 4]), slash: Int32Array.from({ length: H }, (_, h) => [64, 1, 200, n + 9][h % 4]),
        };
        for (const [name, counts] of [['forced', uniform(4, 64)], ['organism-like', uniform(107, 83)], ['half', uniform(n >> 1, n >> 1)],
          ['past n', uniform(n + 7, n + 3)], ['per head', perHead]] as [string, VerticalSlashCounts][]) {
          const want = snapshot(rt, reference.build(scores, counts));
          const ranks = search.rank(scores);
          // Past its bound's limit (e.g. half the columns kept at 16K, 4 heads: 6.3M entries) buildDeferred declines.
          const fits = deferredColumnBound(counts.vertical, n) <= DEFERRED_LIST_MAX_INTS;
          for (const [how, ranked] of [['own selection', undefined], ['ranks', { ranks }]] as const) {
            const d = deferred.buildDeferred(scores, counts, ranked);
            assert.equal(d !== null, fits, `${name} (${how}): built exactly when the bound fits`);
            if (d === null) continue;
            assert.equal(d.index.totalColumns, -1, 'unsettled');
            d.settle();
            assert.deepEqual(snapshot(rt, d.index), want, `${name} (${how}): the deferred index`);
          }
        }
        // Every column kept: null exactly when its bound passes DEFERRED_LIST_MAX_INTS (the caller builds as before).
        const everything = deferredColumnBound(uniform(n, 64).vertical, n);
        const all = deferred.buildDeferred(scores, uniform(n, 64));
        assert.equal(all === null, everything > DEFERRED_LIST_MAX_INTS, `every column kept: bound ${everything}`);
        all?.settle();
      } finally {
        rt.synchronize();
        search.release();
        reference.release();
        deferred.release();
        rt.pool.release(dv);
        rt.pool.release(ds);
      }
    });
  }
});
