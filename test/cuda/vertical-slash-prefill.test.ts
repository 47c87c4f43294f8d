/**
 * GPU Vertical-Slash prefill (src/backends/cuda/methods/vertical-slash.ts) against the CPU method
 * (src/methods/vertical-slash.ts) on the same bf16-rounded inputs: the same selected columns and
 * diagonals, the same per-block ranges and columns, the same exact pair counts, and outputs within
 * bf16 tolerance of the CPU's float64 result. Outputs are poisoned with NaN before each run, so an
 * unwritten element fails. Skipped, with the reason printed, where there is no CUDA device.
 *
 * "Without ties": the GPU sums in fp32, the CPU in float64, so each case first checks on the CPU that
 * the kept and dropped scores at every cut differ by far more than fp32 rounding (deterministic
 * seeds: the check always passes or always fails).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import { downloadVerticalSlashLayout, downloadVerticalSlashSelection } from '../../src/backends/cuda/kernels/vertical-slash-index.js';
import { VerticalSlashDevicePrefill, verticalSlashDeviceParams } from '../../src/backends/cuda/methods/vertical-slash.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { LayerKvCache } from '../../src/engine/kv-cache.js';
import { IndexScratch } from '../../src/methods/select.js';
import { forcedRanks, lastQueryScores } from '../../src/methods/vertical-slash-pattern.js';
import { FORCED_COLUMNS, FORCED_DIAGONALS } from '../../src/methods/vertical-slash-prefill.js';
import { VerticalSlashPrefill } from '../../src/methods/vertical-slash.js';
import { countNaN, randomBf16Values, randomGenerator, referenceCausalAttention, relativeError } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA vertical-slash prefill tests skipped: ${skip}`);

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
  name: string; n: number; H: number; Hkv: number; D: number; seed: number;
  options: { sparsity?: number; params?: Record<string, unknown> };
  /** Fused qkv rows: the queries sit at the start of rows (H + 2·Hkv)·D wide. */
  fusedRows?: boolean;
  /** Also compare with dense causal attention (the selection covers everything). */
  dense?: boolean;
}

const CASES: Case[] = [
  { name: 'GQA 8/2, D=128, counts 40/70', n: 1000, H: 8, Hkv: 2, D: 128, seed: 11, options: { params: { verticalSize: 40, slashSize: 70 } } },
  { name: 'n not a multiple of 64, D=64, no GQA', n: 333, H: 4, Hkv: 4, D: 64, seed: 22, options: { params: { verticalSize: 20, slashSize: 80 } }, fusedRows: true },
  { name: 'GQA group of 8 sharing one KV head, D=64, A=64', n: 1200, H: 8, Hkv: 1, D: 64, seed: 13, options: { params: { verticalSize: 60, slashSize: 64, approximationSize: 64 } } },
  { name: 'only the sink columns as verticals', n: 777, H: 4, Hkv: 2, D: 128, seed: 14, options: { params: { verticalSize: 4, slashSize: 90 } } },
  { name: 'selection covering everything (= dense), A clamped to n', n: 200, H: 4, Hkv: 2, D: 128, seed: 15, options: { params: { verticalSize: 4096, slashSize: 4096 } }, dense: true },
  { name: 'target sparsity 0.7 (count search with device pair counts)', n: 1500, H: 4, Hkv: 2, D: 128, seed: 16, options: { sparsity: 0.7 } },
];

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
      const params = verticalSlashDeviceParams(c.options);

      // CPU method: output, counts, per-head layouts and chosen counts.
      const cache = cpuCache(x);
      const cpu = new VerticalSlashPrefill(params.approximationSize, params.sparsity, params.verticalSize, params.slashSize);
      cpu.keepLayouts = true;
      const ref = new Float32Array(n * H * D);
      const cpuCounts = cpu.prefill({
        layer: 0, shape: { numHeads: H, numKvHeads: Hkv, headDim: D, scale, slidingWindow: null, logitSoftcap: null },
        queries: x.q, numQueries: n, queryStart: 0, cache, out: ref, isLastChunk: true,
      });
      const decision = cpu.lastDecisions.get(0);
      assert.ok(decision);
      const kv = Number(decision.counts.verticalSize), ks = Number(decision.counts.slashSize);

      // GPU method through the device contract.
      const dq = c.fusedRows ? fusedQueryRows(rt, x) : { buf: uploadAsBf16(rt, x.q), rowStride: H * D };
      const dkT = uploadAsBf16(rt, x.kt), dvT = uploadAsBf16(rt, x.vt);
      const devCache = new DeviceLayerKvCache(rt, Hkv, D, n + 5);
      devCache.appendTokens({ k: dkT.ptr, v: dvT.ptr, rowStride: Hkv * D }, n);
      const dout = poisonedBf16(rt, n * H * D);
      const method = new VerticalSlashDevicePrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, params);
      const counts = method.prefill({
        layer: 0, shape: { numHeads: H, numKvHeads: Hkv, headDim: D, scale }, q: dq.buf.ptr, qRowStride: dq.rowStride,
        numQueries: n, queryStart: 0, cache: devCache, out: dout.ptr, isLastChunk: true,
      });
      const out = downloadBf16(rt, dout, n * H * D);
      const index = method.lastIndex;
      assert.ok(index);
      const selection = downloadVerticalSlashSelection(rt, index);
      const layout = downloadVerticalSlashLayout(rt, index);
      const estimationMs = method.lastEstimationMs();
      method.reset();
      devCache.release();
      for (const b of [dq.buf, dkT, dvT, dout]) rt.pool.release(b);

      assert.deepEqual(method.lastChoice && [method.lastChoice.verticalSize, method.lastChoice.slashSize], [kv, ks], 'chosen counts');
      // Same selection, head by head (the CPU's own estimate and forced ranks).
      const A = Math.min(params.approximationSize, n);
      const rows = [0, 1, 2, 3].map(() => new Float64Array(n));
      const idx = new IndexScratch();
      for (let h = 0; h < H; h++) {
        const vertical = new Float64Array(n), slash = new Float64Array(n);
        const rankV = new Int32Array(n), rankS = new Int32Array(n);
        lastQueryScores(x.q, n, H, D, h, cache.keys[Math.floor(h / (H / Hkv))], A, scale, null, vertical, slash, rows);
        forcedRanks(vertical, n, FORCED_COLUMNS, idx, rankV);
        forcedRanks(slash, n, FORCED_DIAGONALS, idx, rankS);
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
      console.log(`#   counts ${kv}/${ks}, sparsity ${sparsity.toFixed(3)}, rel err ${err.toExponential(2)}, estimation ${estimationMs?.toFixed(3)} ms`);
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
