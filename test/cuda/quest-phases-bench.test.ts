/**
 * bench/quest-phases.ts's arithmetic without a GPU: stamps laid out as quest_grid_step_stamped4b writes them
 * ([units, QUEST_GRID_MAX_BLOCKS, 2, QUEST_PHASE_SLOTS] u64, blocks past G left 0) read back per unit, and one step's
 * phases from hand-made stamps with known durations, skews and barrier releases; its command line's defaults and refusals.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QUEST_PHASES_ARGS, readStamps, stepPhases } from '../../bench/quest-phases.js';
import { QUEST_GRID_MAX_BLOCKS, QUEST_PHASE_SLOTS, QUEST_PHASES } from '../../src/backends/cuda/kernels/quest.js';

/** One block's stamps: globaltimer ns at each phase from `ns`, clock64 = 2 cycles per ns from `cycleBase`. */
function writeBlock(words: BigUint64Array, unit: number, block: number, ns: number[], cycleBase: number, barriers: number, held: number): void {
  const at = (unit * QUEST_GRID_MAX_BLOCKS + block) * 2 * QUEST_PHASE_SLOTS;
  ns.forEach((t, phase) => {
    words[at + phase] = BigInt(t);
    words[at + QUEST_PHASE_SLOTS + phase] = BigInt(cycleBase + 2 * (t - ns[0]!));
  });
  words[at + QUEST_PHASES.barriers] = BigInt(barriers);
  words[at + QUEST_PHASES.guessHeld] = BigInt(held);
  // The block's end of scoring: 300 ns after thread 0's.
  words[at + QUEST_PHASES.allScored] = BigInt(ns[1]! + 300);
  words[at + QUEST_PHASE_SLOTS + QUEST_PHASES.allScored] = BigInt(cycleBase + 2 * (ns[1]! + 300 - ns[0]!));
}

test('quest-phases: stamps read back per unit, phases and barrier figures from known stamps', () => {
  const units = 2;
  const words = new BigUint64Array(units * QUEST_GRID_MAX_BLOCKS * 2 * QUEST_PHASE_SLOTS);
  // Phases in slot order: start, scored, at 1st barrier, past it, pass read, at final, past final, end (ns).
  // Unit 0: block 0 starts at 1000, block 1 at 1500 and arrives 1000 ns later at the first barrier.
  writeBlock(words, 0, 0, [1000, 11000, 12000, 14000, 14500, 15500, 17000, 18000], 7, 2, 1);
  writeBlock(words, 0, 1, [1500, 12500, 13000, 14200, 14600, 15600, 17100, 18500], 9, 2, 1);
  // Unit 1: one block only (the rest of its slots stay 0), the same durations as unit 0's block 0, 500 ns later.
  writeBlock(words, 1, 0, [1500, 11500, 12500, 14500, 15000, 16000, 17500, 18500], 11, 3, 0);
  const perUnit = readStamps(words, units);
  assert.deepEqual(perUnit.map((u) => u.length), [2, 1]);
  const p = stepPhases(perUnit, 2); // 2 cycles per ns = 2 GHz: cycle differences read as the ns ones
  const us = (x: number) => x / 1000;
  // Per block means over the three blocks (µs).
  assert.ok(Math.abs(p.score - us((10000 + 11000 + 10000) / 3)) < 1e-9);
  assert.ok(Math.abs(p.guessPassAndPublish - us((1000 + 500 + 1000) / 3)) < 1e-9);
  assert.ok(Math.abs(p.blockScore - us((10300 + 11300 + 10300) / 3)) < 1e-9);
  assert.ok(Math.abs(p.warpSkew - us(300)) < 1e-9);
  assert.ok(Math.abs(p.firstBarrierWait - us((2000 + 1200 + 2000) / 3)) < 1e-9);
  assert.ok(Math.abs(p.guessRead - us((500 + 400 + 500) / 3)) < 1e-9);
  assert.ok(Math.abs(p.phaseC - us(1000)) < 1e-9);
  assert.ok(Math.abs(p.finalBarrierWait - us((1500 + 1500 + 1500) / 3)) < 1e-9);
  assert.ok(Math.abs(p.phaseD - us((1000 + 1400 + 1000) / 3)) < 1e-9);
  // Block 0 of each unit (10000 and 10000) against the rest (unit 0's block 1: 11000).
  assert.ok(Math.abs(p.scoreBlock0 - us(10000)) < 1e-9);
  assert.ok(Math.abs(p.scoreOthers - us(11000)) < 1e-9);
  // Launch-wide: first start 1000, last end 18500; starts 1000..1500.
  assert.equal(p.span, us(17500));
  assert.equal(p.startSkew, us(500));
  // Unit 0: arrivals 12000 / 13000 (spread 1000), first past 14000 (release 1000); unit 1: spread 0, release 2000.
  assert.equal(p.firstArrivalSpread, us(500));
  assert.equal(p.firstRelease, us(1500));
  // Final: unit 0 arrivals 15500 / 15600, first past 17000 (1400); unit 1: 16000 -> 17500 (1500).
  assert.ok(Math.abs(p.finalArrivalSpread - us(50)) < 1e-9);
  assert.ok(Math.abs(p.finalRelease - us(1450)) < 1e-9);
  assert.ok(Math.abs(p.barriers - 7 / 3) < 1e-9);
  assert.ok(Math.abs(p.guessHeld - 2 / 3) < 1e-9);
});

test('quest-phases: command line defaults and refusals', () => {
  const o = QUEST_PHASES_ARGS.parse([]);
  assert.deepEqual(o.lengths, [131072, 65536]);
  assert.deepEqual(o.sparsities, [0.95, 0.9]);
  assert.equal(o.repeats, 30);
  assert.throws(() => QUEST_PHASES_ARGS.parse(['--lengths', '16384']), /lengths/);
  assert.throws(() => QUEST_PHASES_ARGS.parse(['--repeats', '2']), /repeat/);
});
