/**
 * v10's batched page sums (quest.cu, quest_scatter_page_sums; option batchedPageSums) checked without a GPU:
 * a bit-exact fp32 model of v7's per-slot xor tree (each of a batch's four slots summed over the page's lanes
 * at offsets lanes/2 .. 1, a lane adding the received value to its own) and of the reduce-scatter (keep two
 * slots and send two at lanes/2, keep one at lanes/4, then the tree on that one) gives every page the same fp32
 * bits, for 16 lanes (D = 128) and 8 (D = 64), on values whose sums depend on the order (mixed magnitudes),
 * signed zeros, infinities and NaN; exactly one lane per page holds its sum and stores its key. A mutant that
 * adds in another pairing is caught. The kernel itself runs in test/cuda/quest.test.ts against v3.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { randomGenerator } from './helpers.js';

const f32 = Math.fround;
const SLOTS = 4;

/** v7: every lane's sum of slot p after the xor tree over `lanes` lanes (all lanes end equal). */
function treeSums(part: number[][], lanes: number): number[] {
  return Array.from({ length: SLOTS }, (_, p) => {
    let s = part.map((row) => row[p]!);
    for (let off = lanes / 2; off > 0; off >>= 1) s = s.map((x, l) => f32(x + s[l ^ off]!));
    for (const x of s) assert.ok(Object.is(x, s[0]) || (Number.isNaN(x) && Number.isNaN(s[0])), 'v7: every lane holds the same sum');
    return s[0]!;
  });
}

/** The reduce-scatter: per lane, the slot it ends with and its sum (pairWith: the level-one partner's xor mask, lanes/2 in the kernel). */
function scatterSums(part: number[][], lanes: number, pairWith = lanes / 2): Array<{ slot: number; sum: number }> {
  const half = lanes / 2, quarter = lanes / 4;
  const upper = (l: number) => (l & half) !== 0;
  const t = part.map((row, l) => {
    const keep = upper(l) ? [row[2]!, row[3]!] : [row[0]!, row[1]!];
    const partner = part[l ^ pairWith]!;
    const received = upper(l ^ pairWith) ? [partner[0]!, partner[1]!] : [partner[2]!, partner[3]!];
    return [f32(keep[0]! + received[0]!), f32(keep[1]! + received[1]!)];
  });
  const odd = (l: number) => (l & quarter) !== 0;
  let s = t.map((pair, l) => f32((odd(l) ? pair[1]! : pair[0]!) + (odd(l ^ quarter) ? t[l ^ quarter]![0]! : t[l ^ quarter]![1]!)));
  for (let off = quarter / 2; off > 0; off >>= 1) s = s.map((x, l) => f32(x + s[l ^ off]!));
  return s.map((sum, l) => ({ slot: (upper(l) ? 2 : 0) + (odd(l) ? 1 : 0), sum }));
}

const sameBits = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

function randomPart(lanes: number, draw: () => number): number[][] {
  return Array.from({ length: lanes }, () => Array.from({ length: SLOTS }, () => f32(draw())));
}

test('batched page sums: v7\'s tree sums bit for bit, one storing lane per page (16 and 8 lanes)', () => {
  const rand = randomGenerator(91);
  const special = [0, -0, Infinity, -Infinity, NaN, 1e-45, -1e-45, 3.4e38, -3.4e38];
  const draws: Array<[string, () => number]> = [
    ['Quest-like lane parts', () => 4 * rand()],
    ['mixed magnitudes (order-dependent sums)', () => (rand() > 0 ? 1e8 : 1) * rand()],
    ['specials', () => (rand() > 0.6 ? special[Math.floor((rand() + 1) * 4.5) % special.length]! : rand())],
  ];
  let orderSensitive = 0;
  for (const lanes of [16, 8]) for (const [name, draw] of draws) for (let trial = 0; trial < 400; trial++) {
    const part = randomPart(lanes, draw);
    const want = treeSums(part, lanes);
    const got = scatterSums(part, lanes);
    // The lanes whose sub & (lanes / 4 - 1) == 0 store: one per slot.
    const storing = got.filter((_, l) => (l & (lanes / 4 - 1)) === 0);
    assert.deepEqual(storing.map((g) => g.slot).sort(), [0, 1, 2, 3], `${name}, ${lanes} lanes: one storing lane per slot`);
    got.forEach((g, l) => assert.ok(sameBits(g.sum, want[g.slot]!), `${name}, ${lanes} lanes, trial ${trial}, lane ${l}: slot ${g.slot} ${g.sum} != ${want[g.slot]}`));
    // How often a left-to-right sum differs from the tree's: the rows do exercise the order.
    const serial = Array.from({ length: SLOTS }, (_, p) => part.reduce((s, row) => f32(s + row[p]!), 0));
    if (serial.some((x, p) => !sameBits(x, want[p]!))) orderSensitive++;
  }
  assert.ok(orderSensitive > 100, `only ${orderSensitive} batches whose sums depend on the order`);
});

test('batched page sums: pairing lanes at another level first (a mutant) changes some sums', () => {
  const rand = randomGenerator(92);
  let differs = 0;
  for (let trial = 0; trial < 200; trial++) {
    const part = randomPart(16, () => (rand() > 0 ? 1e8 : 1) * rand());
    const want = treeSums(part, 16);
    const got = scatterSums(part, 16, 1);
    if (got.some((g) => !sameBits(g.sum, want[g.slot]!))) differs++;
  }
  assert.ok(differs > 50, `the mutant matched v7 in ${200 - differs} of 200 batches`);
});

test('quest.cu: the reduce-scatter keeps the model\'s shape and only v10\'s fixed-size entries take it', () => {
  const quest = readKernelSource('quest.cu');
  const at = quest.indexOf('__device__ __forceinline__ int quest_scatter_page_sums(');
  assert.ok(at >= 0, 'quest_scatter_page_sums is defined');
  const body = quest.slice(at, quest.indexOf('\n}\n', at));
  assert.match(body, /const bool upper = \(sub & half\) != 0;/);
  assert.match(body, /keep0 \+ __shfl_xor_sync\(full, send0, half\)/);
  assert.match(body, /keep1 \+ __shfl_xor_sync\(full, send1, half\)/);
  assert.match(body, /\(odd \? t1 : t0\) \+ __shfl_xor_sync\(full, odd \? t0 : t1, quarter\)/);
  assert.match(body, /for \(int off = quarter \/ 2; off > 0; off >>= 1\) s \+= __shfl_xor_sync\(full, s, off\);/);
  assert.match(body, /return \(upper \? 2 : 0\) \+ \(odd \? 1 : 0\);/);
  assert.match(quest, /if \(\(sub & \(lanes \/ 4 - 1\)\) == 0 && page < hi\) \{/);
  assert.match(quest, /^QUEST_GRID_STEP_ENTRIES\(_epoch1b, true, true, true, true, 1, true\)$/m);
  assert.match(quest, /^QUEST_GRID_STEP_ENTRIES\(_epoch4b, true, true, true, true, 4, true\)$/m);
  // Session 9: the 2-head light entry and v7's scorer at a constant 7 or 8 heads.
  assert.match(quest, /^QUEST_GRID_STEP_ENTRIES\(_epoch2b, true, true, true, true, 2, true\)$/m);
  assert.match(quest, /^QUEST_GRID_STEP_ENTRIES\(_epoch8b, true, true, true, true, 8, true\)$/m);
  assert.match(quest, /^QUEST_GRID_STEP_ENTRIES\(_epoch7b, true, true, true, true, 7, true\)$/m);
  assert.match(quest, /static_assert\(!BATCHED_SUMS \|\| FIXED_HEADS > 0,/);
  assert.match(quest, /quest_grid_score_chunk_rolled_by<QuestPlainScorer, BATCHED_SUMS>\(/);
});
