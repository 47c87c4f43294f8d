/**
 * The index hand-off (VerticalSlashIndexBuilder.build's `ranked`, CountSearchOptions.deviceHandOff):
 * an index built from the count search's ranks (vs_select_ranked, counts by memsets or a device copy)
 * against the default build on the same device scores (a radix select per head, counts uploaded):
 * bitwise the same selected columns and offsets, per-block ranges and column lists, exact pairs and
 * list length. Scores with ties (quantised), NaN, every count from below the forced items to past n,
 * per-head counts both ways, prompts shorter than a block and partial last blocks; two builds in a
 * row without a host wait between them. The chunked ranking (CountSearchOptions.chunkedRanking:
 * vs_rank_chunks + vs_rank_merge) against vs_rank_rows, bitwise, on the same rows and at chunk edges.
 * The methods with the hand-off are held to the CPU method in vertical-slash-prefill.test.ts. Skipped
 * where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type VerticalSlashCounts, VerticalSlashIndexBuilder } from '../../src/backends/cuda/kernels/vertical-slash-index.js';
import { VerticalSlashCountSearch } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { cudaSkip } from './cuda-skip.js';
import { snapshot, tiedScores } from './vertical-slash-index-util.js';

const skip = cudaSkip('CUDA vertical-slash index hand-off tests');

describe('CUDA vertical-slash index hand-off vs the default build', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  const cases = [
    { n: 50, H: 2, seed: 1, nans: 0 },      // shorter than one 64-row block (counts past n clamp)
    { n: 1000, H: 3, seed: 2, nans: 3 },    // partial last block, NaN scores (ranked last)
    { n: 4096, H: 4, seed: 3, nans: 0 },
    { n: 16_384, H: 4, seed: 4, nans: 1 },  // the organism's heads at 16K
    { n: 20_011, H: 2, seed: 5, nans: 0 },  // more than 4096 ranks per compaction step, odd n
  ];

  for (const c of cases) {
    test(`n=${c.n} H=${c.H}: the same index from the search's ranks`, () => {
      const { n, H } = c;
      const { vertical, slash } = tiedScores(n, H, c.seed, c.nans);
      const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
      rt.cuda.upload(dv.ptr, vertical);
      rt.cuda.upload(ds.ptr, slash);
      const scores = { n, vertical: dv.ptr, slash: ds.ptr };
      const search = new VerticalSlashCountSearch(rt, H, { deviceHandOff: true });
      const reference = new VerticalSlashIndexBuilder(rt, H), handOff = new VerticalSlashIndexBuilder(rt, H);
      const staged = new VerticalSlashIndexBuilder(rt, H, { stagedRanges: true });
      const deviceCounts = rt.pool.acquire(2 * H * 4);
      try {
        const ranks = search.rank(scores);
        assert.equal(search.ranksOf(scores), ranks, 'ranksOf: the ranks of these scores');
        assert.equal(search.ranksOf({ ...scores }), null, 'ranksOf: another scores object has no ranks');
        const uniform = (kv: number, ks: number): VerticalSlashCounts => ({ vertical: new Int32Array(H).fill(kv), slash: new Int32Array(H).fill(ks) });
        const perHead: VerticalSlashCounts = {
          vertical: Int32Array.from({ length: H }, (_, h) => [3, 70, n, 17][h % 4]),
          slash: Int32Array.from({ length: H }, (_, h) => [64, 1, 200, n + 9][h % 4]),
        };
        const countSets: [string, VerticalSlashCounts][] = [
          ['below the forced items', uniform(0, 1)], ['the forced items', uniform(4, 64)], ['one past them', uniform(5, 65)],
          ['organism-like', uniform(107, 83)], ['FlexPrefill-like', uniform(512, 512)], ['half', uniform(n >> 1, n >> 1)],
          ['everything', uniform(n, n)], ['past n (clamped)', uniform(n + 7, n + 3)], ['per head', perHead],
        ];
        for (const [name, counts] of countSets) {
          const want = snapshot(rt, reference.build(scores, counts));
          const variants: [string, Parameters<VerticalSlashIndexBuilder['build']>[2]][] = [['ranks', { ranks }]];
          if (name === 'per head') {
            const both = new Int32Array(2 * H);
            both.set(counts.vertical, 0);
            both.set(counts.slash, H);
            rt.cuda.upload(deviceCounts.ptr, both);
            variants.push(['ranks + device counts', { ranks, counts: deviceCounts.ptr }]);
          }
          for (const [how, ranked] of variants) {
            // Twice in a row: the second build queues behind the first with no host wait before it.
            handOff.build(scores, counts, ranked);
            const got = snapshot(rt, handOff.build(scores, counts, ranked));
            assert.deepEqual(got, want, `${name} (${how}): the hand-off's index`);
            // The range walks over staged lists (session 7): the same index, from the ranks and by itself.
            assert.deepEqual(snapshot(rt, staged.build(scores, counts, ranked)), want, `${name} (${how}): the staged ranges' index`);
          }
          assert.deepEqual(snapshot(rt, staged.build(scores, counts)), want, `${name}: the staged ranges' index (default selection)`);
        }
      } finally {
        rt.synchronize();
        search.release();
        reference.release();
        handOff.release();
        staged.release();
        for (const b of [dv, ds, deviceCounts]) rt.pool.release(b);
      }
    });
  }

  // Chunks of 2048 items: one chunk, exactly one, one item past it, the organism's 8, many and odd.
  for (const c of [{ n: 50, H: 2, nans: 0 }, { n: 2048, H: 1, nans: 2 }, { n: 2049, H: 3, nans: 0 }, { n: 16_384, H: 4, nans: 1 }, { n: 20_011, H: 2, nans: 5 }]) {
    test(`n=${c.n} H=${c.H}: the chunked ranking gives vs_rank_rows' ranks`, () => {
      const { n, H } = c;
      const { vertical, slash } = tiedScores(n, H, 100 + n, c.nans);
      const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
      rt.cuda.upload(dv.ptr, vertical);
      rt.cuda.upload(ds.ptr, slash);
      const scores = { n, vertical: dv.ptr, slash: ds.ptr };
      const oneBlock = new VerticalSlashCountSearch(rt, H), chunked = new VerticalSlashCountSearch(rt, H, { chunkedRanking: true, deviceHandOff: true });
      const download = (ptr: bigint) => {
        rt.synchronize();
        const out = new Int32Array(2 * H * n);
        rt.cuda.download(out, ptr);
        return out;
      };
      try {
        const want = download(oneBlock.rank(scores));
        // Twice: the second ranking queues behind the first with no host wait.
        chunked.rank(scores);
        const got = download(chunked.rank(scores));
        for (let row = 0; row < 2 * H; row++) {
          const seen = new Uint8Array(n);
          for (let i = 0; i < n; i++) seen[want[row * n + i]] = 1;
          assert.ok(seen.every((x) => x === 1), `row ${row}: vs_rank_rows' ranks are a permutation`);
          const at = got.subarray(row * n, (row + 1) * n).findIndex((r, i) => r !== want[row * n + i]);
          assert.equal(at, -1, `row ${row}: item ${at} ranked ${got[row * n + at]}, vs_rank_rows ${want[row * n + at]}`);
        }
        for (const s of [0.5, 0.9]) assert.deepEqual(chunked.counts(scores, s), oneBlock.counts(scores, s), `s=${s}: the same search answer`);
      } finally {
        oneBlock.release();
        chunked.release();
        rt.pool.release(dv);
        rt.pool.release(ds);
      }
    });
  }

  test('a hand-off search answers as the default search', () => {
    const n = 4096, H = 4;
    const { vertical, slash } = tiedScores(n, H, 7, 0);
    const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
    rt.cuda.upload(dv.ptr, vertical);
    rt.cuda.upload(ds.ptr, slash);
    const scores = { n, vertical: dv.ptr, slash: ds.ptr };
    const plain = new VerticalSlashCountSearch(rt, H, { probeLevels: 'auto' });
    const handOff = new VerticalSlashCountSearch(rt, H, { probeLevels: 'auto', deviceHandOff: true });
    try {
      for (const s of [0, 0.5, 0.9, 0.999]) assert.deepEqual(handOff.counts(scores, s), plain.counts(scores, s), `s=${s}`);
    } finally {
      plain.release();
      handOff.release();
      rt.pool.release(dv);
      rt.pool.release(ds);
    }
  });
});
