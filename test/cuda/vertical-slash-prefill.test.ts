/**
 * GPU Vertical-Slash prefill (src/backends/cuda/methods/vertical-slash.ts) against the CPU method
 * (src/methods/vertical-slash.ts) on the same bf16-rounded inputs: the same selected columns and
 * diagonals, the same per-block ranges and columns, the same exact pair counts, and outputs within
 * bf16 tolerance of the CPU's float64 result. Outputs are poisoned with NaN before each run, so an
 * unwritten element fails. Cases with a target sparsity run a third time with the batched count
 * search (vs_count_search_batched, probeLevels 'auto'), then with the index hand-off
 * (deviceHandOff) and with it the chunked ranking (chunkedRanking), all held to the same CPU answers. Skipped, with
 * the reason printed, where there is no CUDA device.
 *
 * "Without ties": the GPU sums in fp32, the CPU in float64, so each case first checks on the CPU that
 * the kept and dropped scores at every cut differ by far more than fp32 rounding (deterministic
 * seeds: the check always passes or always fails).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import { downloadVerticalSlashLayout, downloadVerticalSlashSelection } from '../../src/backends/cuda/kernels/vertical-slash-index.js';
import type { VerticalSlashRowTiles } from '../../src/backends/cuda/kernels/vertical-slash-prefill.js';
import type { CountSearchOptions } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import { FlexPrefillDevicePrefill, flexPrefillDeviceParams } from '../../src/backends/cuda/methods/flexprefill.js';
import {
  type VerticalSlashFamilyDevicePrefill, VerticalSlashDevicePrefill, verticalSlashDeviceParams,
} from '../../src/backends/cuda/methods/vertical-slash.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { FlexPrefillPrefill, coverCount, sortedPrefixSums } from '../../src/methods/flexprefill.js';
import { IndexScratch } from '../../src/methods/select.js';
import { forcedRanks, lastQueryScores } from '../../src/methods/vertical-slash-pattern.js';
import { FORCED_COLUMNS, FORCED_DIAGONALS, type VerticalSlashFamilyPrefill } from '../../src/methods/vertical-slash-prefill.js';
import { VerticalSlashPrefill } from '../../src/methods/vertical-slash.js';
import { countNaN, randomBf16Values, randomGenerator, referenceCausalAttention, relativeError } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA vertical-slash prefill tests');

// bf16 operands (and P rounded to bf16 before PV), as for the dense kernel.
const TOLERANCE = 1e-2;
/** Least relative gap between the last kept and the first dropped score (fp32 vs float64 sums). */
const MIN_CUT_GAP = 5e-5;

interface Inputs {
  n: number; H: number; Hkv: number; D: number;
  q: Float32Array; // [n, H, D]
  kt: Float32Array; // [n, Hkv, D] (the engine's append layout)
  vt: Float32Array; // [n, Hkv, D]
}

function randomInputs(n: number, H: number, Hkv: number, D: number, seed: number): Inputs {
  const rand = randomGenerator(seed);
  return {
    n, H, Hkv, D,
    q: randomBf16Values(n * H * D, rand, 2),
    kt: randomBf16Values(n * Hkv * D, rand, 2),
    vt: randomBf16Values(n * Hkv * D, rand),
  };
}

function cpuCache(x: Inputs): LayerKvCache {
  const cache = new LayerKvCache(x.Hkv, x.D, x.n);
  cache.append(x.kt, x.vt, x.n, 0);
  return cache;
}

interface Case {
  method: 'vertical_and_slash' | 'flexprefill';
  name: string; n: number; H: number; Hkv: number; D: number; seed: number;
  options: { sparsity?: number; params?: Record<string, unknown> };
  /** Fused qkv rows: the queries sit at the start of rows (H + 2·Hkv)·D wide. */
  fusedRows?: boolean;
  /** Also compare with dense causal attention (the selection covers everything). */
  dense?: boolean;
}

const CASES: Case[] = [
  { method: 'vertical_and_slash', name: 'GQA 8/2, D=128, counts 40/70', n: 1000, H: 8, Hkv: 2, D: 128, seed: 11, options: { params: { verticalSize: 40, slashSize: 70 } } },
  { method: 'vertical_and_slash', name: 'n not a multiple of 64, D=64, no GQA', n: 333, H: 4, Hkv: 4, D: 64, seed: 22, options: { params: { verticalSize: 20, slashSize: 80 } }, fusedRows: true },
  { method: 'vertical_and_slash', name: 'GQA group of 8 sharing one KV head, D=64, A=64', n: 1200, H: 8, Hkv: 1, D: 64, seed: 13, options: { params: { verticalSize: 60, slashSize: 64, approximationSize: 64 } } },
  { method: 'vertical_and_slash', name: 'only the sink columns as verticals', n: 777, H: 4, Hkv: 2, D: 128, seed: 14, options: { params: { verticalSize: 4, slashSize: 90 } } },
  { method: 'vertical_and_slash', name: 'selection covering everything (= dense), A clamped to n', n: 200, H: 4, Hkv: 2, D: 128, seed: 15, options: { params: { verticalSize: 4096, slashSize: 4096 } }, dense: true },
  { method: 'vertical_and_slash', name: 'target sparsity 0.7 (count search with device pair counts)', n: 1500, H: 4, Hkv: 2, D: 128, seed: 16, options: { sparsity: 0.7 } },
  { method: 'flexprefill', name: 'FlexPrefill alpha 0.3, min budget 16, A=512', n: 1100, H: 4, Hkv: 2, D: 128, seed: 17, options: { params: { alpha: 0.3, minBudget: 16 } } },
  { method: 'flexprefill', name: 'FlexPrefill, A clamped to n, GQA 4/1, D=64', n: 300, H: 4, Hkv: 1, D: 64, seed: 18, options: { params: { alpha: 0.5, minBudget: 8 } } },
  { method: 'flexprefill', name: 'FlexPrefill target sparsity 0.8 (alpha search on the device)', n: 1300, H: 4, Hkv: 2, D: 128, seed: 39, options: { sparsity: 0.8, params: { minBudget: 16 } } },
  { method: 'flexprefill', name: 'FlexPrefill alpha 1: every column kept (= dense), last block partial', n: 700, H: 4, Hkv: 2, D: 64, seed: 40, options: { params: { alpha: 1, minBudget: 1 } }, dense: true },
  { method: 'flexprefill', name: 'FlexPrefill alpha 0, min budget 1: the forced floor alone', n: 900, H: 8, Hkv: 2, D: 128, seed: 41, options: { params: { alpha: 0, minBudget: 1 } } },
  { method: 'flexprefill', name: 'FlexPrefill target sparsity 0.99: the floor exceeds the budget (note)', n: 600, H: 4, Hkv: 1, D: 64, seed: 42, options: { sparsity: 0.99, params: { minBudget: 8 } } },
  { method: 'flexprefill', name: 'FlexPrefill target sparsity 0.5, GQA 8/1, 30 halvings', n: 1500, H: 8, Hkv: 1, D: 128, seed: 43, options: { sparsity: 0.5, params: { minBudget: 8 } } },
  { method: 'vertical_and_slash', name: 'target sparsity 0 (the count search ends at n: = dense)', n: 260, H: 4, Hkv: 2, D: 64, seed: 44, options: { sparsity: 0 }, dense: true },
  { method: 'vertical_and_slash', name: 'target sparsity 0.99: the floor exceeds the budget (note)', n: 640, H: 4, Hkv: 2, D: 128, seed: 45, options: { sparsity: 0.99 } },
  { method: 'vertical_and_slash', name: 'target sparsity 0.9, GQA 8/2, n not a multiple of 64', n: 1650, H: 8, Hkv: 2, D: 128, seed: 46, options: { sparsity: 0.9 } },
];

/** Least distance between alpha and a coverage prefix sum (fp32 vs float64 scores). */
const MIN_ALPHA_GAP = 1e-5;

/** The CPU reference and the GPU method of a case. */
function methodsOf(rt: CudaRuntime, c: Case, shape: { numHeads: number; numKvHeads: number; headDim: number }): {
  cpu: VerticalSlashFamilyPrefill; gpu: (mTiles: VerticalSlashRowTiles, search: CountSearchOptions | undefined) => VerticalSlashFamilyDevicePrefill; A: number;
} {
  if (c.method === 'vertical_and_slash') {
    const p = verticalSlashDeviceParams(c.options);
    return {
      cpu: new VerticalSlashPrefill(p.approximationSize, p.sparsity, p.verticalSize, p.slashSize),
      gpu: (mTiles, search) => new VerticalSlashDevicePrefill(rt, shape, p, mTiles, search),
      A: Math.min(p.approximationSize, c.n),
    };
  }
  const p = flexPrefillDeviceParams(c.options);
  return {
    cpu: new FlexPrefillPrefill(p.approximationSize, p.minBudget, p.sparsity, p.alpha),
    gpu: (mTiles, search) => new FlexPrefillDevicePrefill(rt, shape, p, mTiles, search),
    A: Math.min(p.approximationSize, c.n),
  };
}

/** Columns (ascending) with rank < k, and the relative gap between the kept and dropped scores. */
function cut(scores: Float64Array, rank: Int32Array, n: number, k: number, forced: number): { kept: number[]; gap: number } {
  const kept: number[] = [];
  let keptMin = Infinity, droppedMax = -Infinity;
  for (let j = 0; j < n; j++) {
    if (rank[j] < k) {
      kept.push(j);
      if (j >= forced) keptMin = Math.min(keptMin, scores[j]);
    } else {
      droppedMax = Math.max(droppedMax, scores[j]);
    }
  }
  const gap = Number.isFinite(keptMin) && Number.isFinite(droppedMax) ? (keptMin - droppedMax) / keptMin : Infinity;
  return { kept, gap };
}

describe('CUDA vertical-slash prefill vs the CPU method', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    console.log(`# device: ${rt.cuda.info.name} (${rt.cuda.info.arch}, ${rt.cuda.info.multiprocessors} SMs)`);
  });
  after(() => rt?.dispose());

  for (const c of CASES) {
    test(`${c.name}: n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D}`, () => {
      const x = randomInputs(c.n, c.H, c.Hkv, c.D, c.seed);
      const { n, H, Hkv, D } = x;
      const scale = 1 / Math.sqrt(D);
      const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
      const { cpu, gpu, A } = methodsOf(rt, c, shape);

      // CPU method: output, counts, per-head layouts and its decision.
      const cache = cpuCache(x);
      cpu.keepLayouts = true;
      const ref = new Float32Array(n * H * D);
      const cpuCounts = cpu.prefill({
        layer: 0, shape: { ...shape, scale, slidingWindow: null, logitSoftcap: null },
        queries: x.q, numQueries: n, queryStart: 0, cache, out: ref, isLastChunk: true,
      });
      const decision = cpu.lastDecisions.get(0);
      assert.ok(decision);

      // GPU method through the device contract, with each row tiling of the attention kernel, and
      // for a target sparsity once more with the batched count search ('auto': as many levels as H allows here).
      // A target sparsity also with the index hand-off (the index from the search's ranks), alone and
      // with the chunked ranking (with given counts no search runs: the hand-off is the default build).
      // undefined: the method's own default search (Vertical-Slash's lean + ordered rounds since session 9).
      const runs: { mTiles: VerticalSlashRowTiles; search: CountSearchOptions | undefined }[] = [{ mTiles: 1, search: {} }, { mTiles: 2, search: {} }];
      if (c.options.sparsity !== undefined) {
        runs.push({ mTiles: 1, search: { probeLevels: 'auto' } });
        runs.push({ mTiles: 1, search: { probeLevels: 'auto', deviceHandOff: true } });
        runs.push({ mTiles: 1, search: { probeLevels: 'auto', deviceHandOff: true, chunkedRanking: true } });
        // The methods' default search with the guided tree and the staged index ranges (session 7; FlexPrefill's alpha search ignores the tree).
        runs.push({ mTiles: 1, search: { probeLevels: 'auto', deviceHandOff: true, chunkedRanking: true, walkLanes: 1, walkColumnBitmap: true, guidedProbes: true, stagedIndexRanges: true } });
        runs.push({ mTiles: 1, search: undefined });
      }
      for (const { mTiles, search } of runs) {
        const method = gpu(mTiles, search);
        const dq = c.fusedRows ? fusedQueryRows(rt, x) : { buf: uploadAsBf16(rt, x.q), rowStride: H * D };
        const dkT = uploadAsBf16(rt, x.kt), dvT = uploadAsBf16(rt, x.vt);
        const devCache = new DeviceLayerKvCache(rt, Hkv, D, n + 5);
        devCache.appendTokens({ k: dkT.ptr, v: dvT.ptr, rowStride: Hkv * D }, n);
        const dout = poisonedBf16(rt, n * H * D);
        const counts = method.prefill({
          layer: 0, shape: { ...shape, scale }, q: dq.buf.ptr, qRowStride: dq.rowStride,
          numQueries: n, queryStart: 0, cache: devCache, out: dout.ptr, isLastChunk: true,
        });
        const out = downloadBf16(rt, dout, n * H * D);
        const index = method.lastIndex;
        const choice = method.lastChoice;
        assert.ok(index && choice);
        const selection = downloadVerticalSlashSelection(rt, index);
        const layout = downloadVerticalSlashLayout(rt, index);
        const estimationMs = method.lastEstimationMs();
        method.reset();
        devCache.release();
        for (const b of [dq.buf, dkT, dvT, dout]) rt.pool.release(b);

        // The same decision: every count the CPU reports (sizes, or alpha and mean sizes).
        for (const [name, value] of Object.entries(choice.summary)) {
          if (!(name in decision.counts)) continue;
          // A searched alpha ends next to a coverage step, where fp32 and float64 prefix sums may take
          // the bisection's last halvings apart: the sizes it selects must still agree (the means).
          if (name === 'alpha' && c.options.sparsity !== undefined) assert.ok(Math.abs(Number(value) - Number(decision.counts.alpha)) < 1e-5, 'alpha');
          else assert.equal(value, decision.counts[name], `decision ${name}`);
        }
        assert.equal(choice.note, decision.note, 'decision note');
        // Same selection, head by head (the CPU's own estimate and forced ranks).
        const rows = [0, 1, 2, 3].map(() => new Float64Array(n));
        const idx = new IndexScratch();
        for (let h = 0; h < H; h++) {
          const vertical = new Float64Array(n), slash = new Float64Array(n);
          const rankV = new Int32Array(n), rankS = new Int32Array(n);
          lastQueryScores(x.q, n, H, D, h, cache.keys[Math.floor(h / (H / Hkv))], A, scale, null, vertical, slash, rows);
          if (c.method === 'flexprefill' && c.options.sparsity === undefined) {
            // Per-head sizes from the CPU's float64 coverage curves, away from alpha's boundary.
            const alpha = Number(c.options.params?.alpha);
            const sized: [Float64Array, number][] = [[vertical, choice.counts.vertical[h]], [slash, choice.counts.slash[h]]];
            for (const [scores, got] of sized) {
              const prefix = sortedPrefixSums(scores, n, 1 / A);
              const cover = coverCount(prefix, n, alpha);
              // alpha >= 1 keeps every entry without reading the curve.
              const nearest = alpha >= 1 ? Infinity : Math.min(...[cover - 2, cover - 1].filter((i) => i >= 0 && i < n).map((i) => Math.abs(prefix[i] - alpha)));
              assert.ok(nearest > MIN_ALPHA_GAP, `head ${h}: alpha within ${nearest} of a prefix sum: pick another seed`);
              const minBudget = Number(c.options.params?.minBudget);
              assert.equal(got, Math.min(n, Math.max(minBudget, cover, scores === vertical ? FORCED_COLUMNS : FORCED_DIAGONALS)), `head ${h}: size`);
            }
          }
          forcedRanks(vertical, n, FORCED_COLUMNS, idx, rankV);
          forcedRanks(slash, n, FORCED_DIAGONALS, idx, rankS);
          const kv = Math.min(choice.counts.vertical[h], n), ks = Math.min(choice.counts.slash[h], n);
          const cols = cut(vertical, rankV, n, kv, FORCED_COLUMNS), offs = cut(slash, rankS, n, ks, FORCED_DIAGONALS);
          assert.ok(cols.gap > MIN_CUT_GAP && offs.gap > MIN_CUT_GAP, `head ${h}: near-tie at the cut (${cols.gap}, ${offs.gap}): pick another seed`);
          assert.deepEqual([...selection.columns[h]], cols.kept, `head ${h}: selected columns`);
          assert.deepEqual([...selection.offsets[h]], offs.kept, `head ${h}: selected diagonals`);
          const cpuLayout = cpu.lastLayouts[h];
          for (let m = 0; m < cpuLayout.numBlocks; m++) {
            const r0 = cpuLayout.rangeStart[m], r1 = cpuLayout.rangeStart[m + 1];
            const c0 = cpuLayout.columnStart[m], c1 = cpuLayout.columnStart[m + 1];
            assert.deepEqual([...layout.ranges[h][m]], [...cpuLayout.ranges.subarray(2 * r0, 2 * r1)], `head ${h} block ${m}: ranges`);
            assert.deepEqual([...layout.columns[h][m]], [...cpuLayout.columns.subarray(c0, c1)], `head ${h} block ${m}: columns`);
          }
        }
        assert.deepEqual([...counts.attended], [...cpuCounts.attended], 'exact attended pairs per head');
        assert.deepEqual([...counts.dense], [...cpuCounts.dense], 'dense pairs per head');

        assert.equal(countNaN(out), 0, 'every output element must be written');
        const err = relativeError(out, ref);
        const sparsity = 1 - counts.attended.reduce((a, b) => a + b, 0) / counts.dense.reduce((a, b) => a + b, 0);
        console.log(`#   mTiles ${mTiles}${search === undefined ? ', the method\'s default search' : ''}${search?.probeLevels ? `, batched search (${search.probeLevels} levels)` : ''}${search?.deviceHandOff ? ', hand-off' : ''}${search?.chunkedRanking ? ', chunked ranking' : ''}${search?.guidedProbes ? ', guided tree' : ''}${search?.stagedIndexRanges ? ', staged index ranges' : ''}: ${JSON.stringify(choice.summary)}, sparsity ${sparsity.toFixed(3)}, rel err ${err.toExponential(2)}, estimation ${estimationMs?.toFixed(3)} ms`);
        assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
        if (c.dense) {
          assert.equal(sparsity, 0, 'a selection covering everything attends every causal pair');
          const kFlat = new Float32Array(Hkv * n * D), vFlat = new Float32Array(Hkv * n * D);
          for (let t = 0; t < n; t++) {
            for (let kvh = 0; kvh < Hkv; kvh++) {
              kFlat.set(x.kt.subarray((t * Hkv + kvh) * D, (t * Hkv + kvh + 1) * D), (kvh * n + t) * D);
              vFlat.set(x.vt.subarray((t * Hkv + kvh) * D, (t * Hkv + kvh + 1) * D), (kvh * n + t) * D);
            }
          }
          const dense = referenceCausalAttention(x.q, kFlat, vFlat, n, H, Hkv, D, n, 0, n, scale);
          const denseErr = relativeError(out, dense);
          assert.ok(denseErr < TOLERANCE, `vs dense causal attention: relative error ${denseErr}`);
        }
      }
    });
  }

  /** Queries inside fused qkv rows [n, (H + 2·Hkv)·D], the k/v columns filled with other data. */
  function fusedQueryRows(rt: CudaRuntime, x: Inputs) {
    const { n, H, Hkv, D } = x;
    const rowStride = (H + 2 * Hkv) * D;
    const rows = randomBf16Values(n * rowStride, randomGenerator(999), 3);
    for (let t = 0; t < n; t++) rows.set(x.q.subarray(t * H * D, (t + 1) * H * D), t * rowStride);
    return { buf: uploadAsBf16(rt, rows), rowStride };
  }
});
