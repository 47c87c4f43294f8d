/**
 * v8's light page scoring (quest.cu, quest_lane_score_light) checked without a GPU: a bit-exact fp32
 * model of v3's lane score (quest_lane_score: fmaxf of the two products per dim, heads first, then dims,
 * no fused multiply-add) and of v8's (the bound picked by the query's sign, one product per dim, the same
 * order; a NaN lane rescored as v3) give the same fp32 bits on random bf16 bounds and queries, and on
 * crafted ones: signed zeros, subnormals, the largest finite values (products that overflow), infinite
 * bounds against zero queries (0 · inf), NaN bounds and NaN queries. Bounds are built as
 * quest_refresh_page builds them (fminf / fmaxf over a page's rows), so min <= max wherever neither is
 * NaN, the condition v8's pick relies on. Two mutants (no NaN rescoring; ties picked by the wrong sign
 * on bounds out of order) are caught, so the comparison can fail. Also: quest.cu's light scorer keeps
 * the shape the model runs, v8's entries take v5's parameters, and lightScores needs v7.
 * The kernel itself runs in test/cuda/quest.test.ts against v3 and the CPU.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { bf16BitsToFloat } from '../../src/backends/cuda/bf16.js';
import { QUEST_GRID_PARAMS, QUEST_KERNEL_NAMES, QuestKernels } from '../../src/backends/cuda/kernels/quest.js';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { entryParameterKinds } from './kernel-source-text.js';
import { mulberry32 } from '../helpers/tiny-checkpoint.js';

const f32 = Math.fround;
/** CUDA's fmaxf: the larger, NaN only where both are NaN. */
function fmaxf(a: number, b: number): number {
  if (Number.isNaN(a)) return b;
  if (Number.isNaN(b)) return a;
  return a >= b ? a : b;
}
/** fminf, as quest_refresh_page folds rows. */
function fminf(a: number, b: number): number {
  if (Number.isNaN(a)) return b;
  if (Number.isNaN(b)) return a;
  return a <= b ? a : b;
}

/** One lane's 8 dims: page bounds [8] and query values [heads][8], all bf16 bit patterns. */
interface Lane { min: number[]; max: number[]; q: number[][] }

/** quest_lane_score: s += fmaxf(q·min, q·max) per head, then per dim; each op rounded to fp32 (bf16 · bf16 is exact in double, so f32(a·b) is the fp32 product). */
function laneScoreV3(l: Lane): number {
  let s = 0;
  for (const qh of l.q) {
    for (let d = 0; d < 8; ++d) {
      const q = bf16BitsToFloat(qh[d]!);
      s = f32(s + fmaxf(f32(q * bf16BitsToFloat(l.min[d]!)), f32(q * bf16BitsToFloat(l.max[d]!))));
    }
  }
  return s;
}

/** How v8 picks a dim's bound from the query's bf16 bits: the kernel's rule (sign bit set: min) or a mutant. */
type Pick = (qBits: number, minBits: number, maxBits: number) => number;
const kernelPick: Pick = (qBits, minBits, maxBits) => ((qBits & 0x8000) !== 0 ? minBits : maxBits);

/** quest_lane_score_light then the caller's NaN rescoring (rescore false: a mutant without it). */
function laneScoreLight(l: Lane, pick: Pick = kernelPick, rescore = true): number {
  let s = 0;
  for (const qh of l.q) {
    for (let d = 0; d < 8; ++d) {
      s = f32(s + f32(bf16BitsToFloat(qh[d]!) * bf16BitsToFloat(pick(qh[d]!, l.min[d]!, l.max[d]!))));
    }
  }
  return rescore && Number.isNaN(s) ? laneScoreV3(l) : s;
}

function bitsOf(x: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, x);
  return view.getUint32(0);
}

const SPECIALS = [0x0000, 0x8000, 0x0001, 0x8001, 0x007f, 0x0080, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x7fc0, 0x3f80, 0xbf80];

/** A bf16 value: mostly ordinary (|x| in [2^-8, 2^8)), with the given share of SPECIALS. */
function bf16Bits(rand: () => number, specialShare: number): number {
  if (rand() < specialShare) return SPECIALS[Math.floor(rand() * SPECIALS.length)]!;
  const sign = rand() < 0.5 ? 0x8000 : 0;
  const exponent = 127 - 8 + Math.floor(rand() * 16);
  return sign | (exponent << 7) | Math.floor(rand() * 128);
}

/** A lane whose bounds fold `rows` random key rows as quest_refresh_page does (fminf / fmaxf per dim). */
function refreshedLane(rand: () => number, heads: number, rows: number, specialShare: number): Lane {
  const min: number[] = [], max: number[] = [];
  for (let d = 0; d < 8; ++d) {
    let mn = bf16BitsToFloat(bf16Bits(rand, specialShare)), mx = mn;
    for (let r = 1; r < rows; ++r) {
      const x = bf16BitsToFloat(bf16Bits(rand, specialShare));
      mn = fminf(mn, x);
      mx = fmaxf(mx, x);
    }
    // min and max of bf16 values are bf16 values: back to their bits.
    min.push(bitsOf(mn) >>> 16);
    max.push(bitsOf(mx) >>> 16);
  }
  const q = Array.from({ length: heads }, () => Array.from({ length: 8 }, () => bf16Bits(rand, specialShare)));
  return { min, max, q };
}

function mismatches(lanes: Lane[], light: (l: Lane) => number): number {
  let n = 0;
  for (const l of lanes) if (bitsOf(laneScoreV3(l)) !== bitsOf(light(l))) ++n;
  return n;
}

test('v8 light lane scores equal v3\'s bit for bit on ordinary bounds and queries (1, 2, 4 heads)', () => {
  const rand = mulberry32(17);
  for (const heads of [1, 2, 4]) {
    const lanes = Array.from({ length: 4000 }, () => refreshedLane(rand, heads, 1 + Math.floor(rand() * 16), 0));
    assert.equal(mismatches(lanes, (l) => laneScoreLight(l)), 0, `${heads} heads`);
  }
});

test('v8 light lane scores equal v3\'s bit for bit with signed zeros, subnormals, overflow, infinities and NaN', () => {
  const rand = mulberry32(29);
  let nanLanes = 0;
  let rescored = 0;
  for (const share of [0.05, 0.2, 0.5]) {
    const lanes = Array.from({ length: 4000 }, () => refreshedLane(rand, 4, 1 + Math.floor(rand() * 4), share));
    assert.equal(mismatches(lanes, (l) => laneScoreLight(l)), 0, `special share ${share}`);
    for (const l of lanes) {
      if (Number.isNaN(laneScoreV3(l))) ++nanLanes;
      if (Number.isNaN(laneScoreLight(l, kernelPick, false))) ++rescored;
    }
  }
  // The crafted inputs reach the rescoring path, and v3's own NaN scores too.
  assert.ok(rescored > 100, `${rescored} lanes rescored`);
  assert.ok(nanLanes > 10, `${nanLanes} lanes score NaN in v3`);
});

test('the comparison catches mutants: no NaN rescoring, and a pick that ignores the query\'s sign', () => {
  const rand = mulberry32(41);
  const specials = Array.from({ length: 2000 }, () => refreshedLane(rand, 4, 2, 0.3));
  assert.ok(mismatches(specials, (l) => laneScoreLight(l, kernelPick, false)) > 0, 'without rescoring, 0 · inf and NaN bounds differ');
  const ordinary = Array.from({ length: 200 }, () => refreshedLane(rand, 4, 8, 0));
  assert.ok(mismatches(ordinary, (l) => laneScoreLight(l, (_q, _mn, mx) => mx)) > 150, 'always the max bound differs');
  assert.ok(mismatches(ordinary, (l) => laneScoreLight(l, (q, mn, mx) => ((q & 0x8000) !== 0 ? mx : mn))) > 150, 'the swapped pick differs');
});

test('v8 light scorer in quest.cu: the sign masks, the pick, the unfused products in v3\'s order and the NaN rescoring the model runs', () => {
  const quest = readKernelSource('quest.cu');
  const scorerAt = quest.indexOf('__device__ __forceinline__ float quest_lane_score_light(');
  assert.ok(scorerAt >= 0, 'quest_lane_score_light is defined');
  const scorer = quest.slice(scorerAt, quest.indexOf('\n}\n', scorerAt));
  assert.match(scorer, /for \(int j = 0; j < HEADS; \+\+j\) \{\s*#pragma unroll\s*for \(int e = 0; e < 4; \+\+e\) \{/, 'heads outer, dims inner');
  assert.match(scorer, /const u32 picked = \(wMin\[e\] & lq\.neg\[j\]\[e\]\) \| \(wMax\[e\] & ~lq\.neg\[j\]\[e\]\);/);
  assert.match(scorer, /\} else \{\s*s = __fadd_rn\(s, __fmul_rn\(lq\.qf\[j\]\[2 \* e\], __uint_as_float\(picked << 16\)\)\);\s*s = __fadd_rn\(s, __fmul_rn\(lq\.qf\[j\]\[2 \* e \+ 1\], __uint_as_float\(picked & 0xffff0000u\)\)\);/);
  // Session 9's fused products (measurement only) are a separate branch taken only with FUSED; the defaults pass false.
  assert.match(quest, /template <int HEADS, bool FUSED = false>\n__device__ __forceinline__ float quest_lane_score_light\(/);
  assert.match(quest, /__device__ __forceinline__ bool quest_is_nan\(float x\) \{ return \(__float_as_uint\(x\) & 0x7fffffffu\) > 0x7f800000u; \}/);
  const loadAt = quest.indexOf('__device__ __forceinline__ void quest_light_query_load(');
  const load = quest.slice(loadAt, quest.indexOf('\n}\n', loadAt));
  assert.match(load, /lq\.neg\[j\]\[e\] = \(\(wq\[e\] >> 15\) & 0x00010001u\) \* 0xffffu;/, 'a half\'s mask is its sign bit spread');
  assert.match(load, /lq\.qf\[j\]\[2 \* e\] = __uint_as_float\(wq\[e\] << 16\);\s*lq\.qf\[j\]\[2 \* e \+ 1\] = __uint_as_float\(wq\[e\] & 0xffff0000u\);/);
  // v8's per-page score (its scorer), run by v7's rolled loop with v7's refill.
  const scorerTypeAt = quest.indexOf('struct QuestLightScorer {');
  assert.ok(scorerTypeAt >= 0, 'QuestLightScorer is defined');
  const scorerType = quest.slice(scorerTypeAt, quest.indexOf('\n};\n', scorerTypeAt));
  assert.match(scorerType, /s = quest_lane_score_light<HEADS, FUSED>\(rawMin, rawMax, lq\);\s*if \(quest_is_nan\(s\)\) s = quest_lane_score\(rawMin, rawMax, q, h0, HEADS, D, sub\);/);
  assert.match(scorerType, /void start\(int sub\) \{ quest_light_query_load<HEADS>\(q, h0, D, sub, lq\); \}/);
  const chunkAt = quest.indexOf('__device__ __forceinline__ void quest_grid_score_chunk_light(');
  const chunk = quest.slice(chunkAt, quest.indexOf('\n}\n', chunkAt));
  assert.match(chunk, /QuestLightScorer<HEADS, FUSED> scorer\{q, h0, D, \{\}\};\s*quest_grid_score_chunk_rolled_by<QuestLightScorer<HEADS, FUSED>, BATCHED_SUMS, PREFETCH_AHEAD>\(pageMin, pageMax, D, hk, pageStride, lo, hi, keys, a,\s*o, scorer\);/);
  const loopAt = quest.indexOf('__device__ __forceinline__ void quest_grid_score_chunk_rolled_by(');
  const loop = quest.slice(loopAt, quest.indexOf('\n}\n', loopAt));
  assert.match(loop, /scorer\.start\(sub\);/);
  assert.match(loop, /float s = page < hi \? scorer\.score\(rawMin\[p\], rawMax\[p\], sub\) : 0\.f;/);
  assert.match(loop, /const int next = page \+ batch;\s*if \(next < hi\) \{/, 'v7\'s refill');
  // The sign masks pick min for a negative half: check the mask arithmetic itself on every sign pair.
  for (const w of [0x0000_0000, 0x8000_0000, 0x0000_8000, 0x8000_8000, 0xbf80_3f80, 0x3f80_bf80]) {
    const mask = (Math.imul((w >>> 15) & 0x0001_0001, 0xffff) >>> 0);
    const hi = (w & 0x8000_0000) !== 0 ? 0xffff_0000 : 0, lo = (w & 0x8000) !== 0 ? 0xffff : 0;
    assert.equal(mask, (hi | lo) >>> 0, `mask of ${w.toString(16)}`);
  }
});

test('v8 launchers declare the parameters quest.cu\'s light entries take, and lightScores needs v7', () => {
  const quest = readKernelSource('quest.cu');
  for (const [kernel, params] of [['gridStepLight', QUEST_GRID_PARAMS.gridStep], ['gridStepAtLight', QUEST_GRID_PARAMS.gridStepAt]] as const) {
    const name = QUEST_KERNEL_NAMES[kernel];
    const kinds = entryParameterKinds(quest, name);
    assert.ok(kinds, `${name} is defined`);
    assert.deepEqual(kinds, [...params], name);
  }
  const rt = {} as unknown as CudaRuntime;
  const shape = { numHeads: 32, numKvHeads: 8, headDim: 128 };
  assert.throws(() => new QuestKernels(rt, shape, 16, true, { lightScores: true }), /lightScores \(v8\)/);
  assert.throws(() => new QuestKernels(rt, shape, 16, true, { multiBlockStep: true, lightScores: true }), /lightScores \(v8\)/);
  const v8 = new QuestKernels(rt, shape, 16, true, { multiBlockStep: true, rolledScores: true, lightScores: true });
  assert.equal(v8.lightScores, true);
  assert.equal(new QuestKernels(rt, shape, 16, true, { multiBlockStep: true, rolledScores: true }).lightScores, false, 'v7 keeps its own scorer');
});

test('v8\'s 4-head entries, v9 and v10: the launchers declare quest.cu\'s parameters, and each option needs the one before it', () => {
  const quest = readKernelSource('quest.cu');
  for (const [kernel, params] of [
    ['gridStepLight4', QUEST_GRID_PARAMS.gridStep], ['gridStepAtLight4', QUEST_GRID_PARAMS.gridStepAt],
    ['gridStepGuess', QUEST_GRID_PARAMS.gridStep], ['gridStepAtGuess', QUEST_GRID_PARAMS.gridStepAt],
    ['gridStepEpoch', QUEST_GRID_PARAMS.gridStep], ['gridStepAtEpoch', QUEST_GRID_PARAMS.gridStepAt],
    ['gridStepEpoch4', QUEST_GRID_PARAMS.gridStep], ['gridStepAtEpoch4', QUEST_GRID_PARAMS.gridStepAt],
  ] as const) {
    const name = QUEST_KERNEL_NAMES[kernel];
    assert.deepEqual(entryParameterKinds(quest, name), [...params], name);
  }
  // The selects alone take quest_grid_select's parameters.
  const select = entryParameterKinds(quest, QUEST_KERNEL_NAMES.gridSelect);
  for (const kernel of ['gridSelectGuess', 'gridSelectEpoch'] as const) assert.deepEqual(entryParameterKinds(quest, QUEST_KERNEL_NAMES[kernel]), select);
  // The 4-head entries compile the light scorer for 4 heads alone.
  assert.match(quest, /^QUEST_GRID_STEP_ENTRIES\(_light4, true, true, false, false, 4\)$/m);
  assert.match(quest, /^QUEST_GRID_STEP_ENTRIES\(_epoch4, true, true, true, true, 4\)$/m);
  const rt = {} as unknown as CudaRuntime;
  const shape = { numHeads: 32, numKvHeads: 8, headDim: 128 };
  const v8 = { multiBlockStep: true, rolledScores: true, lightScores: true };
  assert.throws(() => new QuestKernels(rt, shape, 16, true, { multiBlockStep: true, rolledScores: true, specializedHeads: true }), /specializedHeads/);
  assert.throws(() => new QuestKernels(rt, shape, 16, true, { ...v8, guessedPass: true, specializedHeads: true }), /specializedHeads/);
  assert.throws(() => new QuestKernels(rt, shape, 16, true, { multiBlockStep: true, rolledScores: true, guessedPass: true }), /guessedPass \(v9\)/);
  assert.throws(() => new QuestKernels(rt, shape, 16, true, { ...v8, epochBarriers: true }), /epochBarriers \(v10\)/);
  assert.equal(new QuestKernels(rt, shape, 16, true, { ...v8, guessedPass: true, epochBarriers: true }).epochBarriers, true);
  new QuestKernels(rt, shape, 16, true, { ...v8, specializedHeads: true });
  new QuestKernels(rt, shape, 16, true, { ...v8, guessedPass: true, epochBarriers: true, specializedHeads: true }); // v10's 4-head entries
  new QuestKernels(rt, { numHeads: 28, numKvHeads: 4, headDim: 128 }, 16, true, { ...v8, specializedHeads: true }); // 7-head units: v7's entries (quest-unit-entries-host)
  // Session 9's 7-head entry is one of v10's unit-size entries.
  assert.throws(() => new QuestKernels(rt, shape, 16, true, { ...v8, specializedHeads: true, constantPlainHeads: true }), /constantPlainHeads/);
  assert.equal(new QuestKernels(rt, { numHeads: 28, numKvHeads: 4, headDim: 128 }, 16, true,
    { ...v8, guessedPass: true, epochBarriers: true, specializedHeads: true, constantPlainHeads: true }).stepEntry, 'v10h7');
});
