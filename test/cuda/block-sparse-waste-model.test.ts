/**
 * The waste model behind docs/perf.md's session-7 answer to "where does computed / attended 1.23 on the
 * shared lists come from" (bench/block-sparse-waste-model.ts): every computed 16 × 16 block lands in
 * exactly one category, the attended pairs equal the selection's, and hand-counted selections give
 * their hand-counted categories.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ChunkSelection, packChunkLists, selectionPairCount } from '../../src/backends/cuda/block-sparse-layout.js';
import { WASTE_CATEGORIES, wasteOfLists } from '../../bench/block-sparse-waste-model.js';
import { rng } from '../methods/helpers.js';

/** One head whose chunk m selects lists[m] (ascending). */
function selectionOf(n: number, lists: number[][]): ChunkSelection {
  const B = Math.ceil(n / 16);
  const selected = new Int32Array(B * B), counts = new Int32Array(B);
  lists.forEach((l, m) => { l.forEach((j, i) => { selected[m * B + i] = j; }); counts[m] = l.length; });
  return { chunkSize: 16, numTokens: n, heads: [{ selected, counts, stride: B }] };
}

describe('block-sparse waste model', () => {
  test('dense causal lists at 128 tokens, 64-key steps: the diagonal triangles and the future tiles only', () => {
    const n = 128;
    const sel = selectionOf(n, Array.from({ length: 8 }, (_, m) => Array.from({ length: m + 1 }, (_, j) => j)));
    const w = wasteOfLists(packChunkLists(sel), n, 64, 2);
    assert.equal(w.attended, (n * (n + 1)) / 2);
    // Tiles 0-3 both warpgroups (one step), 4-7 warpgroup 1's own: 8 diagonal tiles of 120 masked pairs,
    // 6 future blocks in each warpgroup's own diagonal step.
    assert.deepEqual(w.waste, { diagonal: 8 * 120, padding: 0, future: 12 * 256, local: 0, far: 0 });
    assert.equal(w.computed, (4 + 8) * 4 * 256);
  });

  test('a chunk reaching far back: its warpgroup\'s other slots compute that tile for nothing (far), padding closes the class', () => {
    const n = 256;
    const lists = Array.from({ length: 16 }, (_, m) => (m === 11 ? [2, 11] : [m]));
    const w = wasteOfLists(packChunkLists(selectionOf(n, lists)), n, 64, 2);
    assert.equal(w.waste.far, 3 * 256, 'slots 8-10 compute chunk 11\'s tile 2');
    // Warpgroup 0 of the second CTA: tiles 2, 8, 9, 10, 11 in two steps, the second padded with 3 entries.
    assert.equal(w.waste.padding, 3 * 4 * 256);
    // Each warpgroup's slot l computes the l earlier own tiles of its neighbours: 1 + 2 + 3 in each of the 4.
    assert.equal(w.waste.local, 4 * 6 * 256);
  });

  test('every computed block is attended or in one category; attended pairs equal the selection\'s', () => {
    const r = rng(5);
    for (const n of [300, 1000]) {
      const B = Math.ceil(n / 16);
      const lists = Array.from({ length: B }, (_, m) => Array.from({ length: m + 1 }, (_, j) => j).filter((j) => j === 0 || j === m || r() < 0.3));
      const sel = selectionOf(n, lists);
      for (const [blockN, consumers] of [[64, 2], [128, 2], [64, 3]] as const) {
        const w = wasteOfLists(packChunkLists(sel), n, blockN, consumers);
        assert.equal(w.attended, selectionPairCount(sel, 0), `n=${n} n${blockN} c${consumers}: attended`);
        assert.equal(w.computed, w.attended + WASTE_CATEGORIES.reduce((a, c) => a + w.waste[c], 0), `n=${n} n${blockN} c${consumers}: conservation`);
      }
    }
  });

  test('chunks of another size are refused', () => {
    const sel = { ...selectionOf(64, [[0], [1], [0, 2], [3]]), chunkSize: 32 };
    assert.throws(() => wasteOfLists(packChunkLists({ ...sel, heads: [{ ...sel.heads[0], stride: 2 }] }), 64, 64, 2), /chunk size 32/);
  });
});
