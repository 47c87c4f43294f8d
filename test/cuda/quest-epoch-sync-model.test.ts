/**
 * A host model of v10's never-reset unit sync (quest.cu, QuestGridSync<true> and quest_grid_finish's
 * EPOCH end): the barrier counter and the candidate counter are never put back to 0; barrier b of a
 * launch passes at base + b · G arrivals (modulo 2^32, compared as a signed difference), candidate
 * slots count from candBase, and the last block to arrive at a launch's final barrier stores both ends
 * as the next launch's bases. The model runs launch sequences with varying blocks per unit, barrier
 * counts, unscored launches (no barrier) and ranked / unranked bins, from zeroed words and from counters
 * near 2^32, and checks that every launch starts with counter = base and candidates = candBase, that no
 * barrier passes early, and that every candidate slot lies in [0, count). Also the source's shape.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { randomGenerator } from './helpers.js';

interface Words { barrier: number; base: number; cand: number; candBase: number }

const u32 = (x: number) => x >>> 0;
/** (int)(value - goal) >= 0: the poll's test. */
const reached = (value: number, goal: number) => (u32(value - goal) | 0) >= 0;

/**
 * One launch of G blocks with `barriers` unit barriers (0: an unscored step, which returns before any),
 * appending `candidates` keys (a ranked bin) before the final one. Arrivals interleave in random order.
 */
function launch(w: Words, G: number, barriers: number, candidates: number, rand: () => number): void {
  if (barriers === 0) return;
  // Every block reads the bases at its start, before its first arrival.
  const base = w.base, candBase = w.candBase;
  assert.equal(w.barrier, base, 'a launch starts with the barrier counter at its base');
  assert.equal(w.cand, candBase, 'and the candidate counter at its base');
  const slots: number[] = [];
  for (let b = 1; b <= barriers; b++) {
    const goal = u32(base + b * G);
    const order = Array.from({ length: G }, (_, i) => i).sort(() => rand());
    let last = -1;
    order.forEach((block, i) => {
      if (b === barriers) {
        // Phase C: this block's share of the candidates, appended before it arrives.
        const mine = Math.floor(candidates / G) + (block < candidates % G ? 1 : 0);
        if (mine > 0) {
          slots.push(u32(w.cand - candBase));
          w.cand = u32(w.cand + mine);
        }
      }
      w.barrier = u32(w.barrier + 1);
      if (i < G - 1) assert.ok(!reached(w.barrier, goal), `barrier ${b} passed after ${i + 1} of ${G} arrivals`);
      if (w.barrier === goal) last = block;
    });
    assert.ok(reached(w.barrier, goal), `barrier ${b} passes once all ${G} blocks arrived`);
    assert.ok(last >= 0, 'one block sees its arrival complete the goal');
    if (b === barriers) {
      const count = u32(w.cand - candBase);
      assert.equal(count, candidates, 'the count read after the final barrier');
      for (const s of slots) assert.ok(s < count, `slot ${s} of ${count}`);
      // The last arriver stores the next launch's bases (the candidate base only for a ranked bin).
      w.base = u32(base + barriers * G);
      if (candidates > 0) w.candBase = u32(candBase + count);
    }
  }
}

test('v10 sync model: every launch starts at its bases, no barrier passes early, from zero and across 2^32', () => {
  const rand = randomGenerator(101);
  for (const start of [0, 0xffffffff - 40, 0xfffffff0]) {
    const w: Words = { barrier: start, base: start, cand: start, candBase: start };
    for (let l = 0; l < 400; l++) {
      const G = 1 + Math.floor(((rand() + 1) / 2) * 32);
      const barriers = l % 7 === 0 ? 0 : 2 + Math.floor(((rand() + 1) / 2) * 4); // unscored, or 2..5 barriers
      const candidates = rand() > 0 ? Math.floor(((rand() + 1) / 2) * 257) : 0;
      launch(w, G, barriers, candidates, rand);
    }
  }
});

test('v10 sync model: a launch that forgot the candidate base would hand out slots past the count (mutant caught)', () => {
  const rand = randomGenerator(102);
  const w: Words = { barrier: 0, base: 0, cand: 0, candBase: 0 };
  launch(w, 4, 2, 10, rand);
  w.candBase = 0; // the mutant: no candidate base stored
  assert.throws(() => launch(w, 4, 2, 10, rand));
});

test('quest.cu: v10 counts from the bases it read and stores the next ones at its final barrier, with no exit atomic', () => {
  const source = readKernelSource('quest.cu');
  assert.match(source, /if \(EPOCH\) return quest_unit_barrier_epoch\(scratch \+ GS_E_BARRIER, base \+ \(u32\)b \* \(u32\)G, lastShared\);/);
  assert.match(source, /for \(u32 polls = 0; \(int\)\(quest_load_acquire\(counter\) - goal\) < 0; \+\+polls\)/);
  assert.match(source, /at = \(int\)\(atomicAdd\(sync\.candidates\(\), \(u32\)__popc\(m\)\) - sync\.candBase\);/);
  assert.match(source, /const int c = ranked \? \(int\)\(__ldcg\(sync\.candidates\(\)\) - sync\.candBase\) : 0;/);
  const end = source.slice(source.indexOf('  if (EPOCH) {\n    // The next launch'));
  assert.ok(end.length > 0, 'the EPOCH end of quest_grid_finish');
  assert.match(end, /if \(lastAtFinal && tid == 0\) \{\s+unitScratch\[GS_E_BASE\] = sync\.base \+ \(u32\)barrier \* \(u32\)G;\s+if \(ranked\) unitScratch\[GS_E_CAND_BASE\] = sync\.candBase \+ \(u32\)c;\s+\}\s+return;/);
  // The bases are read at the select's start, before its first barrier.
  const chunk = source.slice(source.indexOf('__device__ void quest_grid_select_chunk_guessed('));
  assert.ok(chunk.indexOf('__ldcg(unitScratch + GS_E_BASE)') < chunk.indexOf('sync.arrive('), 'bases read before the first arrival');
});
