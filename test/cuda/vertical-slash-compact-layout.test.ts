/**
 * The compact guided layout (CountSearchOptions.compactLayout, session 10): on the CPU, the option's
 * refusals and its entry groups (vertical-slash-search-groups.ts; the guards themselves are checked by
 * vertical-slash-search-entry-groups-host.test.ts); on the device
 * (skipped without one), the compact search answers exactly as the lean search it stands in for, rounds
 * and probes included (the same trees give the same rounds; the host harness,
 * vertical-slash-search-guided-host, compares the trees themselves), ordered and not, and with the
 * selection hand-off names the same selection. Scores with ties and NaN and bench-like flat / peaked
 * rows; n from below one block to past the one-level bitmap; H 1-32.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { scoreRows } from '../../bench/vertical-slash-estimation.js';
import { VS_SEARCH_ENTRY_GROUPS, vsSearchGroupDefines } from '../../src/backends/cuda/kernels/vertical-slash-search-groups.js';
import { type CountSearchOptions, VerticalSlashCountSearch } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import { VERTICAL_SLASH_COUNT_SEARCH } from '../../src/backends/cuda/methods/vertical-slash.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { cudaSkip } from './cuda-skip.js';
import { tiedScores } from './vertical-slash-index-util.js';

/** Vertical-Slash's default search (lean + ordered), whatever else becomes default: what compact stands in for. */
const LEAN_ORDER: CountSearchOptions = { ...VERTICAL_SLASH_COUNT_SEARCH, leanLayout: true, orderedSelect: true, selectionHandOff: false, compactLayout: false };

const COMPACT_ENTRIES = [
  'vs_count_search_batched_lanes_bits_guided_compact_order', 'vs_count_search_batched_lanes_bits_guided_compact',
  'vs_count_search_batched_lanes_bits_guided_compact_order_handoff', 'vs_count_search_batched_lanes_bits_guided_compact_timed',
];

describe('count search compactLayout option (CPU)', () => {
  const rt = {} as CudaRuntime;
  test('needs leanLayout, and orderedSelect with the selection hand-off', () => {
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...LEAN_ORDER, leanLayout: false, orderedSelect: false, compactLayout: true }),
      /compactLayout needs leanLayout/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...LEAN_ORDER, orderedSelect: false, selectionHandOff: true, compactLayout: true }),
      /compactLayout with selectionHandOff needs orderedSelect/);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...LEAN_ORDER, compactLayout: true }).compactLayout, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...LEAN_ORDER, selectionHandOff: true, compactLayout: true }).compactLayout, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...LEAN_ORDER, orderedSelect: false, compactLayout: true }).compactLayout, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...LEAN_ORDER, orderedSelect: false, timeRounds: true, compactLayout: true }).compactLayout, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, LEAN_ORDER).compactLayout, false);
  });

  test('the compact entries are the compact entry group (and the lean and compact round timing the timedLean one)', () => {
    assert.deepEqual([...VS_SEARCH_ENTRY_GROUPS.compact.entries].sort(), COMPACT_ENTRIES.filter((e) => !e.endsWith('_timed')).sort());
    assert.deepEqual([...VS_SEARCH_ENTRY_GROUPS.timedLean.entries].sort(),
      ['vs_count_search_batched_lanes_bits_guided_compact_timed', 'vs_count_search_batched_lanes_bits_guided_lean_timed']);
    assert.deepEqual(vsSearchGroupDefines('compact'), { VS_SEARCH_ENTRIES: 6 });
    assert.deepEqual(vsSearchGroupDefines('timedLean'), { VS_SEARCH_ENTRIES: 8, VS_SEARCH_TIMING: 1 });
  });
});

const skip = cudaSkip('CUDA vertical-slash compact layout tests');

describe('CUDA vertical-slash count search: the compact layout against the lean one', { skip }, () => {
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
      const compact = new VerticalSlashCountSearch(rt, H, { ...LEAN_ORDER, compactLayout: true });
      const leanUnordered = new VerticalSlashCountSearch(rt, H, { ...LEAN_ORDER, orderedSelect: false });
      const compactUnordered = new VerticalSlashCountSearch(rt, H, { ...LEAN_ORDER, orderedSelect: false, compactLayout: true });
      const leanHandOff = new VerticalSlashCountSearch(rt, H, { ...LEAN_ORDER, selectionHandOff: true });
      const compactHandOff = new VerticalSlashCountSearch(rt, H, { ...LEAN_ORDER, selectionHandOff: true, compactLayout: true });
      try {
        let rounds = 0;
        for (const s of [0, 0.5, 0.8, 0.9, 0.95, 0.999]) {
          const want = lean.counts(scores, s);
          assert.deepEqual(compact.counts(scores, s), want, `s=${s}: the compact search's outcome (rounds included)`);
          assert.deepEqual(compactUnordered.counts(scores, s), leanUnordered.counts(scores, s), `s=${s}: without ordered selections`);
          assert.deepEqual(leanHandOff.counts(scores, s), want, `s=${s}: the lean hand-off's outcome`);
          assert.deepEqual(compactHandOff.counts(scores, s), want, `s=${s}: the compact hand-off's outcome`);
          rounds += want.rounds;
          const a = leanHandOff.selectionOf(scores), b = compactHandOff.selectionOf(scores);
          assert.equal(b === null, a === null, `s=${s}: the compact hand-off names a slot exactly where the lean one does`);
          if (a === null || b === null) continue;
          const countsA = new Int32Array(2 * H), countsB = new Int32Array(2 * H);
          const offA = new Int32Array(H * n), offB = new Int32Array(H * n), colA = new Int32Array(H * n), colB = new Int32Array(H * n);
          rt.synchronize();
          rt.cuda.download(countsA, a.counts);
          rt.cuda.download(countsB, b.counts);
          rt.cuda.download(offA, a.offsets);
          rt.cuda.download(offB, b.offsets);
          rt.cuda.download(colA, a.columns);
          rt.cuda.download(colB, b.columns);
          assert.deepEqual([...countsB], [...countsA], `s=${s}: the handed-off counts`);
          for (let h = 0; h < H; h++) {
            const rows = (x: Int32Array, k: number) => [...x.subarray(h * n, h * n + Math.min(k, n))];
            assert.deepEqual(rows(offB, countsA[H + h]), rows(offA, countsA[H + h]), `s=${s}: head ${h}'s handed-off offsets`);
            assert.deepEqual(rows(colB, countsA[h]), rows(colA, countsA[h]), `s=${s}: head ${h}'s handed-off columns`);
          }
        }
        console.log(`# n=${n} H=${H} ${c.rows}: ${rounds} rounds over 6 searches, compact = lean`);
      } finally {
        rt.synchronize();
        for (const x of [lean, compact, leanUnordered, compactUnordered, leanHandOff, compactHandOff]) x.release();
        rt.pool.release(dv);
        rt.pool.release(ds);
      }
    });
  }
});
