/**
 * GPU correctness of the Hopper block-sparse prefill (block_sparse_wgmma_steps + block_sparse_prefill_wgmma)
 * against the CPU Block-Sparse method: same bf16-rounded inputs, the method's own chunk selection, its
 * float64 output as reference; the step lists the GPU builds are compared entry by entry with the host
 * reference (wgmmaCtaSteps). Outputs are poisoned with NaN before each launch, so an unwritten element
 * fails. Also: a list of every chunk equals the dense flash kernel, empty rows write zeros, and the
 * variant is reachable through BlockSparseFlashPrefill's `wgmma` option. Each case runs with CTAs of two
 * consumer warpgroups (128 rows) and, where its tiling has 64-key steps, of three (192 rows); the GQA
 * and many-step cases also in the KV-head-major block order (`ctaOrder: 'kv'`, which only changes which
 * block takes which (CTA row, head)), and the automatic choice in that order (`autoCtaOrder`). The
 * ablation variants (session 7: `ablation` flags deferPv / leanMask / ownTurns / idleWarps /
 * allCompute / kvSkew / earlyK / contigFill / entGlobal / entAhead, session 8: maskSelect / maskFirst / entBallot, session 9:
 * stepsFlat / flatCausal; labels -dpv / -lm / -ot / -iw / -ac / -sk / -ek / -cf / -eg / -ea / -ms / -mf / -eb / -sf / -fc) run the same
 * checks on their own cases ("ablation" in the test names; -sf and -fc also on every causal chunk at n = 4000, c = 16 and 64);
 * -cf, -eg, -ea, -ms, -mf also bit for bit against the plain tiling on every causal chunk (where -cf's contiguous fill
 * and -ms's select path run), and the
 * launcher's two launches run apart (buildSteps, then attend: the bench's --split-steps) equal run(). Needs a compute capability 9.0 GPU; skipped with the
 * reason elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { type ChunkSelection, packChunkLists } from '../../src/backends/cuda/block-sparse-layout.js';
import { wgmmaCtaRows, wgmmaCtaSteps, wgmmaPairedOwnSteps, wgmmaStepsAll } from '../../src/backends/cuda/block-sparse-wgmma-layout.js';
import {
  BlockSparseWgmmaPrefill, type BlockSparseWgmmaTiling, blockSparseWgmmaLabel, parseBlockSparseWgmmaLabel, resolveBlockSparseWgmmaTiling,
} from '../../src/backends/cuda/kernels/block-sparse-prefill-wgmma.js';
import { BlockSparseFlashPrefill, releaseChunkLists, uploadChunkLists } from '../../src/backends/cuda/kernels/block-sparse-prefill.js';
import { wgmmaPrefillUnsupported } from '../../src/backends/cuda/kernels/flash-prefill-wgmma.js';
import { FlashPrefill } from '../../src/backends/cuda/kernels/flash-prefill.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import {
  type BlockSparseInputs, assertEmptyRowsAreZero, cpuMethodReference, everyCausalChunk, handMadeEmptyRowSelection, randomBlockSparseInputs, selectionReference,
} from './block-sparse-inputs.js';
import { countNaN, relativeError } from './helpers.js';
import { BLOCK_SPARSE_ABLATION_LABELS } from './block-sparse-ablation-labels.js';

/** Where the suite cannot run: no CUDA device, or one without wgmma (checked once the runtime exists). */
const skip = isCudaAvailable() ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA wgmma block-sparse prefill tests skipped: ${skip}`);

// bf16 operands (and P rounded to bf16 before P·V), as for the dense kernels.
const TOLERANCE = 1e-2;

/** The tiling with two consumers, and with three where its steps are 64 keys (three take no other). */
function withConsumers(tiling: Partial<BlockSparseWgmmaTiling>): BlockSparseWgmmaTiling[] {
  const two = resolveBlockSparseWgmmaTiling({ ...tiling, consumers: 2 });
  return two.blockN === 64 ? [two, { ...two, consumers: 3 }] : [two];
}

describe('CUDA wgmma block-sparse prefill', { skip }, () => {
  let rt: CudaRuntime;
  let noWgmma: string | null = null;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    noWgmma = wgmmaPrefillUnsupported(rt.cuda.info, 128);
    console.log(`# device: ${rt.cuda.info.name} (${rt.cuda.info.arch}, ${rt.cuda.info.multiprocessors} SMs)${noWgmma ? `; skipping: ${noWgmma}` : ''}`);
  });
  after(() => rt?.dispose());

  /** Runs steps + attention over `sel` and returns [n, H, D]; checks the GPU step lists against wgmmaCtaSteps. */
  function runGpu(
    x: BlockSparseInputs, sel: ChunkSelection, tiling: Partial<BlockSparseWgmmaTiling> | 'auto-kv', viaLauncher = false, apart = false,
    limits: { maxPersistentCtas?: number } = {},
  ): Float32Array {
    const { n, H, Hkv, D, kvStride } = x;
    const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
    const launcher = tiling === 'auto-kv' ? new BlockSparseFlashPrefill(rt, shape, { autoCtaOrder: 'kv' })
      : viaLauncher ? new BlockSparseFlashPrefill(rt, shape, { wgmma: tiling }) : null;
    if (tiling === 'auto-kv') assert.equal(launcher?.wgmma?.tiling.ctaOrder, 'kv', 'autoCtaOrder reaches the automatic tilings');
    if (tiling === 'auto-kv' && !launcher?.wgmma) throw new Error('the automatic choice did not pick the wgmma kernel on this device');
    const kernel = launcher?.wgmma ?? new BlockSparseWgmmaPrefill(rt, shape, tiling as Partial<BlockSparseWgmmaTiling>, limits);
    const host = packChunkLists(sel);
    const lists = uploadChunkLists(rt, host);
    const dq = uploadAsBf16(rt, x.q), dk = uploadAsBf16(rt, x.k), dv = uploadAsBf16(rt, x.v);
    const dout = poisonedBf16(rt, n * H * D);
    const args = { q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, lists, numQueries: n, kvLen: n, kvStride, scale: 1 / Math.sqrt(D) };
    if (launcher) launcher.run(args);
    else if (apart) {
      kernel.buildSteps(args);
      kernel.attend(args);
    } else kernel.run(args);
    const out = downloadBf16(rt, dout, n * H * D);
    // The kernel that ran (the automatic choice picks one of two per run by the lists).
    const { entries, stepCounts, stepsBoth, pairedOwnSteps, geometry: geo } = (launcher?.wgmma ?? kernel).downloadSteps();
    for (let h = 0; h < H; h++) {
      for (let cr = 0; cr < geo.numCtaRows; cr++) {
        const cta = h * geo.numCtaRows + cr;
        const expected = wgmmaCtaSteps(host, n, geo, h, cr);
        assert.equal(stepCounts[cta] * geo.subTiles, expected.length, `steps of CTA ${h}/${cr}`);
        assert.equal(stepsBoth[cta], wgmmaStepsAll(expected, geo.subTiles, geo.consumers), `leading all-steps of CTA ${h}/${cr}`);
        if (pairedOwnSteps) assert.equal(pairedOwnSteps[cta], wgmmaPairedOwnSteps(expected, geo.subTiles), `paired own steps of CTA ${h}/${cr}`);
        assert.deepEqual([...entries.subarray(cta * geo.stepStride, cta * geo.stepStride + expected.length)], expected, `step list of CTA ${h}/${cr}`);
      }
    }
    for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
    releaseChunkLists(rt, lists);
    (launcher ?? kernel).release();
    return out;
  }

  /** Our dense flash kernel's output [n, H, D] on the same inputs (causal, every key). */
  function denseFlashOf(x: BlockSparseInputs): Float32Array {
    const { n, H, Hkv, D } = x;
    const dense = new FlashPrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D });
    const dq = uploadAsBf16(rt, x.q), dk = uploadAsBf16(rt, x.k), dv = uploadAsBf16(rt, x.v);
    const dout = poisonedBf16(rt, n * H * D);
    dense.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, numQueries: n, queryStart: 0, kvLen: n, kvStride: x.kvStride, scale: 1 / Math.sqrt(D) });
    const ref = downloadBf16(rt, dout, n * H * D);
    for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
    return ref;
  }

  /** The tiling over the CPU method's own selection: every output written, within TOLERANCE of the method. */
  function assertMatchesCpuMethod(x: BlockSparseInputs, chunk: number, top: number, tiling: Parameters<typeof runGpu>[2], known?: { ref: Float32Array; sel: ChunkSelection }): void {
    const { ref, sel } = known ?? cpuMethodReference(x, chunk, top);
    const out = runGpu(x, sel, tiling);
    assert.equal(countNaN(out), 0, 'every output element must be written');
    const err = relativeError(out, ref);
    console.log(`#   rel err ${err.toExponential(2)}`);
    assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
  }

  /** Every causal chunk selected (n = 555: a partial last block; GQA 4) equals the dense flash kernel. */
  function assertEveryChunkEqualsDense(tiling: BlockSparseWgmmaTiling): void {
    const n = 555, H = 8, Hkv = 2, D = 128;
    const x = randomBlockSparseInputs(n, H, Hkv, D, 0, 11);
    const out = runGpu(x, everyCausalChunk(n, H), tiling, true);
    const ref = denseFlashOf(x);
    assert.equal(countNaN(out), 0);
    const err = relativeError(out, ref);
    console.log(`#   block-sparse wgmma vs dense flash: rel diff ${err.toExponential(2)}`);
    assert.ok(err < 2e-3, `block-sparse wgmma with every chunk differs from dense flash by ${err}`);
  }

  /**
   * The hand-made selection with empty rows (n = 300, 4 heads), and head 3 with one whole CTA (the second:
   * rows 128..255, or 192..299 with three consumers) selecting nothing at all, so it has no steps.
   */
  function assertEmptyRowsWriteZeros(D: 64 | 128, tiling: BlockSparseWgmmaTiling): void {
    const x = randomBlockSparseInputs(300, 4, 2, D, 0, 6);
    const sel = handMadeEmptyRowSelection(300, 4);
    const B = Math.ceil(300 / 16);
    const ctaChunks = wgmmaCtaRows(tiling.consumers) / 16;
    for (let m = ctaChunks; m < Math.min(B, 2 * ctaChunks); m++) sel.heads[3].counts[m] = 0;
    const ref = selectionReference(x, sel);
    const out = runGpu(x, sel, tiling);
    assert.equal(countNaN(out), 0, 'every output element must be written');
    assertEmptyRowsAreZero(out, x, sel);
    const err = relativeError(out, ref);
    console.log(`#   rel err ${err.toExponential(2)}`);
    assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
  }

  const methodCases: { n: number; H: number; Hkv: number; D: 64 | 128; chunk: number; top: number; extraRows: number; seed: number; tiling: Partial<BlockSparseWgmmaTiling> }[] = [
    { n: 1000, H: 8, Hkv: 2, D: 128, chunk: 16, top: 8, extraRows: 0, seed: 1, tiling: {} }, // GQA, the default tiling
    { n: 1000, H: 8, Hkv: 2, D: 128, chunk: 16, top: 8, extraRows: 0, seed: 1, tiling: { blockN: 128, stages: 2 } },
    { n: 333, H: 4, Hkv: 4, D: 64, chunk: 16, top: 5, extraRows: 3, seed: 2, tiling: {} }, // partial last chunk and CTA, D = 64
    { n: 333, H: 4, Hkv: 4, D: 64, chunk: 16, top: 5, extraRows: 3, seed: 2, tiling: { blockN: 128, stages: 3 } },
    { n: 250, H: 6, Hkv: 2, D: 128, chunk: 16, top: 100, extraRows: 0, seed: 3, tiling: { stages: 2 } }, // t >= chunks: dense causal
    { n: 517, H: 4, Hkv: 1, D: 64, chunk: 32, top: 6, extraRows: 0, seed: 4, tiling: { stages: 4 } }, // c = 32
    { n: 2048, H: 4, Hkv: 2, D: 128, chunk: 16, top: 20, extraRows: 5, seed: 5, tiling: {} }, // many steps: stages wrap
    { n: 2048, H: 4, Hkv: 2, D: 128, chunk: 16, top: 20, extraRows: 5, seed: 5, tiling: { blockN: 128, stages: 3 } },
    { n: 700, H: 4, Hkv: 1, D: 128, chunk: 64, top: 4, extraRows: 0, seed: 6, tiling: { stages: 2 } }, // c = 64: a chunk spans 4 slots
    { n: 4000, H: 2, Hkv: 1, D: 128, chunk: 16, top: 40, extraRows: 0, seed: 7, tiling: { stages: 4 } },
    // KV-head-major block order: GQA groups of 4 and 2 (the map from block to (CTA row, head) uses both).
    { n: 1000, H: 8, Hkv: 2, D: 128, chunk: 16, top: 8, extraRows: 0, seed: 1, tiling: { ctaOrder: 'kv' } },
    { n: 1000, H: 8, Hkv: 2, D: 128, chunk: 16, top: 8, extraRows: 0, seed: 1, tiling: { blockN: 128, stages: 2, ctaOrder: 'kv' } },
    { n: 2048, H: 4, Hkv: 2, D: 128, chunk: 16, top: 20, extraRows: 5, seed: 5, tiling: { blockN: 128, stages: 2, ctaOrder: 'kv' } },
    { n: 333, H: 4, Hkv: 4, D: 64, chunk: 16, top: 5, extraRows: 3, seed: 2, tiling: { ctaOrder: 'kv' } },
  ];
  for (const c of methodCases.flatMap((m) => withConsumers(m.tiling).map((tiling) => ({ ...m, tiling })))) {
    test(`n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D} c=${c.chunk} t=${c.top} ${blockSparseWgmmaLabel(c.tiling)} vs the CPU method`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      assertMatchesCpuMethod(randomBlockSparseInputs(c.n, c.H, c.Hkv, c.D, c.extraRows, c.seed), c.chunk, c.top, c.tiling);
    });
  }

  // The automatic choice in the KV-head-major order, both of its tilings: t = 3 of 64 chunks is sparse
  // enough for the 192-row one (at most a fifth of the chunks), t = 40 is not.
  for (const top of [3, 40]) {
    test(`the automatic tilings in the KV-head-major order (autoCtaOrder 'kv', t=${top}) vs the CPU method`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      assertMatchesCpuMethod(randomBlockSparseInputs(1024, 8, 2, 128, 0, 12), 16, top, 'auto-kv');
    });
  }

  for (const tiling of ([{ blockN: 64, stages: 3 }, { blockN: 128, stages: 2 }, { blockN: 64, stages: 3, ctaOrder: 'kv' }, { blockN: 128, stages: 2, ctaOrder: 'kv' }] as const).flatMap((x) => withConsumers(x))) {
    test(`a list of every causal chunk equals the dense flash kernel (partial last block, GQA, ${blockSparseWgmmaLabel(tiling)})`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      assertEveryChunkEqualsDense(tiling);
    });
  }

  const emptyRowCases: [64 | 128, BlockSparseWgmmaTiling][] = [
    [128, resolveBlockSparseWgmmaTiling({ blockN: 64, stages: 3 })], [64, resolveBlockSparseWgmmaTiling({ blockN: 128, stages: 2 })],
    [128, resolveBlockSparseWgmmaTiling({ blockN: 64, stages: 2, consumers: 3 })], [64, resolveBlockSparseWgmmaTiling({ blockN: 64, stages: 3, consumers: 3 })],
  ];
  for (const [D, tiling] of emptyRowCases) {
    test(`empty rows write zeros; other rows attend exactly their lists (hand-made selection, D=${D}, ${blockSparseWgmmaLabel(tiling)})`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      assertEmptyRowsWriteZeros(D, tiling);
    });
  }
  // Ablation variants (session 7): BLOCK_SPARSE_ABLATION_LABELS.
  const ablationTiling = (label: string): BlockSparseWgmmaTiling => {
    const t = parseBlockSparseWgmmaLabel(label);
    if (!t) throw new Error(`not a wgmma label: ${label}`);
    return t;
  };
  const ablationCases = [
    { n: 2048, H: 4, Hkv: 2, D: 128 as const, chunk: 16, top: 20, extraRows: 5, seed: 5 }, // many steps: stages wrap, long own runs
    { n: 1000, H: 8, Hkv: 2, D: 128 as const, chunk: 16, top: 8, extraRows: 0, seed: 1 }, // GQA 4
    { n: 333, H: 4, Hkv: 4, D: 64 as const, chunk: 16, top: 5, extraRows: 3, seed: 2 }, // partial last chunk and CTA, D = 64
    { n: 700, H: 4, Hkv: 1, D: 128 as const, chunk: 64, top: 4, extraRows: 0, seed: 6 }, // c = 64: whole stages of one slot's chunk
  ];
  // The CPU method's output and selection, once per case (every label reuses them).
  const references = new Map<number, { x: BlockSparseInputs; sel: ChunkSelection; ref: Float32Array }>();
  const referenceOf = (i: number) => {
    const c = ablationCases[i];
    const known = references.get(i);
    if (known) return known;
    const x = randomBlockSparseInputs(c.n, c.H, c.Hkv, c.D, c.extraRows, c.seed);
    const r = { x, ...cpuMethodReference(x, c.chunk, c.top) };
    references.set(i, r);
    return r;
  };
  for (const label of BLOCK_SPARSE_ABLATION_LABELS) {
    ablationCases.forEach((c, i) => {
      test(`ablation ${label}: n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D} c=${c.chunk} t=${c.top} vs the CPU method`, (t) => {
        if (noWgmma) return t.skip(noWgmma);
        const { x, sel, ref } = referenceOf(i);
        assertMatchesCpuMethod(x, c.chunk, c.top, ablationTiling(label), { ref, sel });
      });
    });
    // deferPv, leanMask, ownTurns, maskSelect, maskFirst and entBallot run the same operations on the same values (in another order or
    // without no-op masks): bit for bit the plain tiling's output. idleWarps and allCompute change which
    // warps run a softmax over a step with nothing selected, where the plain kernel rescales by
    // exp2(fmaf(m, c, -m·c)) (a rounding error: 1 within an ulp or two), so they agree to rounding.
    const bitExact = (t: BlockSparseWgmmaTiling) => !t.ablation?.idleWarps && !t.ablation?.allCompute;
    test(`ablation ${label}: n=2048 outputs equal the plain tiling's (bit for bit where no softmax is added or skipped)`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      const { x, sel } = referenceOf(0);
      const flagged = ablationTiling(label);
      const plain = runGpu(x, sel, { ...flagged, ablation: undefined });
      const out = runGpu(x, sel, flagged);
      if (bitExact(flagged)) {
        let differ = 0;
        for (let i = 0; i < out.length; i++) if (!Object.is(out[i], plain[i])) differ++;
        assert.equal(differ, 0, `${differ} of ${out.length} outputs differ from the plain tiling's`);
      } else {
        const err = relativeError(out, plain);
        console.log(`#   vs the plain tiling: rel diff ${err.toExponential(2)}`);
        assert.ok(err < 1e-4, `differs from the plain tiling by ${err}`);
      }
    });
    test(`ablation ${label}: a list of every causal chunk equals the dense flash kernel (partial last block, GQA)`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      assertEveryChunkEqualsDense(ablationTiling(label));
    });
    test(`ablation ${label}: empty rows and an empty CTA write zeros; other rows attend exactly their lists`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      assertEmptyRowsWriteZeros(128, ablationTiling(label));
    });
  }
  const bitForBit = (out: Float32Array, plain: Float32Array): number => {
    let differ = 0;
    for (let i = 0; i < out.length; i++) if (!Object.is(out[i], plain[i])) differ++;
    return differ;
  };
  // contigFill's fast path runs on steps of consecutive selected tiles, which the method's own random
  // selections above rarely give; every causal chunk gives them on all but the diagonal steps (and
  // maskSelect's and leanMask's no-causal paths on every off-diagonal step, with the partial last tile
  // at n = 555 taking the causal path for the cache end).
  for (const label of BLOCK_SPARSE_ABLATION_LABELS.filter((l) => /-(cf|eg|ea|ms|mf)/.test(l))) {
    for (const n of [555, 1024]) {
      test(`ablation ${label}: every causal chunk at n=${n}, bit for bit the plain tiling's`, (t) => {
        if (noWgmma) return t.skip(noWgmma);
        const x = randomBlockSparseInputs(n, 8, 2, 128, 0, 12);
        const sel = everyCausalChunk(n, 8);
        const flagged = ablationTiling(label);
        const plain = runGpu(x, sel, { ...flagged, ablation: undefined });
        const out = runGpu(x, sel, flagged);
        assert.equal(countNaN(out), 0);
        assert.equal(bitForBit(out, plain), 0, 'outputs differ from the plain tiling\'s');
      });
    }
  }
  // stepsFlat walks 1,024 (entry, tile) pairs a round: every causal chunk at n = 4000 gives a 192-row CTA
  // up to 12 × 250 pairs (three rounds, a thread's slot moving on within and between rounds), at c = 64
  // each list entry four pairs. flatCausal at c = 64: every warpgroup's diagonal chunk takes the causal
  // path. runGpu checks every CTA's step list against the host's; the flag off is the reference.
  const everyChunkFlagCases = [
    ['wgmma-c3-n64-s3-kv-ms-eb-sf', 16, 'stepsFlat'], ['wgmma-n128-s2-kv-mf-eb-sf', 16, 'stepsFlat'], ['wgmma-c3-n64-s3-kv-lm-ms-eb-sf', 64, 'stepsFlat'],
    ['wgmma-c3-n64-s3-kv-lm-ms-eb-fc', 64, 'flatCausal'], ['wgmma-c3-n64-s3-kv-ms-eb-fc', 16, 'flatCausal'],
  ] as const;
  for (const [label, chunkSize, flag] of everyChunkFlagCases) {
    test(`ablation ${label}: every causal chunk at n=4000, c=${chunkSize}, bit for bit the tiling without ${flag}`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      const n = 4000, H = 2;
      const x = randomBlockSparseInputs(n, H, 1, 128, 0, 13);
      const sel = everyCausalChunk(n, H, chunkSize);
      const flagged = ablationTiling(label);
      const plain = runGpu(x, sel, { ...flagged, ablation: { ...flagged.ablation, [flag]: false } });
      const out = runGpu(x, sel, flagged);
      assert.equal(countNaN(out), 0);
      assert.equal(bitForBit(out, plain), 0, `outputs differ from the tiling without ${flag}`);
    });
  }
  // persistent: with a few CTAs each runs many items (both Q tiles reused, the stage ring and the turn
  // barriers carried across items, items with no step), bit for bit the tiling without the flag.
  const persistentCases = [
    { what: 'the CPU method\'s selection, n=2048 H=4 c=16', maxCtas: 3, data: () => { const r = referenceOf(0); return { x: r.x, sel: r.sel, ref: r.ref as Float32Array | null }; } },
    { what: 'the CPU method\'s selection, n=700 H=4 c=64', maxCtas: 2, data: () => { const r = referenceOf(3); return { x: r.x, sel: r.sel, ref: r.ref as Float32Array | null }; } },
    { what: 'every causal chunk, n=1024 H=8', maxCtas: 5, data: () => ({ x: randomBlockSparseInputs(1024, 8, 2, 128, 0, 12), sel: everyCausalChunk(1024, 8), ref: null }) },
    {
      what: 'empty rows and a CTA with no step, n=300 H=4', maxCtas: 2, data: () => {
        const x = randomBlockSparseInputs(300, 4, 2, 128, 0, 6);
        const sel = handMadeEmptyRowSelection(300, 4);
        for (let m = 12; m < 19; m++) sel.heads[3].counts[m] = 0;
        return { x, sel, ref: selectionReference(x, sel) as Float32Array | null };
      },
    },
  ];
  // workCounter (-wc) rides on persistent: its reference drops both.
  for (const label of BLOCK_SPARSE_ABLATION_LABELS.filter((l) => l.endsWith('-ps') || l.endsWith('-ps-wc'))) {
    for (const c of persistentCases) {
      test(`ablation ${label}: ${c.what}, at most ${c.maxCtas} CTAs: bit for bit the tiling without persistent`, (t) => {
        if (noWgmma) return t.skip(noWgmma);
        const { x, sel, ref } = c.data();
        const flagged = ablationTiling(label);
        const plain = runGpu(x, sel, { ...flagged, ablation: { ...flagged.ablation, persistent: false, workCounter: false } });
        const out = runGpu(x, sel, flagged, false, false, { maxPersistentCtas: c.maxCtas });
        assert.equal(countNaN(out), 0, 'every output element must be written');
        assert.equal(bitForBit(out, plain), 0, 'outputs differ from the tiling without persistent');
        if (ref) {
          const err = relativeError(out, ref);
          console.log(`#   rel err ${err.toExponential(2)}`);
          assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
        }
        if (c.what.startsWith('empty')) assertEmptyRowsAreZero(out, x, sel);
      });
    }
  }
  // The work counter's pair must be back at 0 after every launch (the last CTA resets it): one kernel object
  // launched again and again (the bench's timing loop, attend() alone as --split-steps times it), each output
  // bit for bit the plain tiling's. A pair left behind would start the next launch's tickets past the last item,
  // leaving most rows unwritten (NaN, the poison).
  for (const [label, maxPersistentCtas] of [['wgmma-c3-n64-s3-kv-ms-eb-ps-wc', 3], ['wgmma-n128-s2-kv-mf-eb-ps-wc', undefined]] as const) {
    test(`ablation ${label}: launched four times on one kernel (run, run, attend, attend), ${maxPersistentCtas ?? 'one an SM'} CTAs: each bit for bit the plain tiling`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      const { x, sel } = referenceOf(1);
      const flagged = ablationTiling(label);
      const plain = runGpu(x, sel, { ...flagged, ablation: { ...flagged.ablation, persistent: false, workCounter: false } });
      const { n, H, Hkv, D, kvStride } = x;
      const kernel = new BlockSparseWgmmaPrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, flagged, { maxPersistentCtas });
      const lists = uploadChunkLists(rt, packChunkLists(sel));
      const dq = uploadAsBf16(rt, x.q), dk = uploadAsBf16(rt, x.k), dv = uploadAsBf16(rt, x.v);
      const dout = poisonedBf16(rt, n * H * D);
      const args = { q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, lists, numQueries: n, kvLen: n, kvStride, scale: 1 / Math.sqrt(D) };
      try {
        for (const how of ['run', 'run', 'attend', 'attend'] as const) {
          rt.cuda.fill16Async(dout.ptr, 0x7fc0, n * H * D, rt.stream);
          if (how === 'run') kernel.run(args);
          else kernel.attend(args);
          const out = downloadBf16(rt, dout, n * H * D);
          assert.equal(countNaN(out), 0, `every output element written (${how})`);
          assert.equal(bitForBit(out, plain), 0, `outputs differ from the plain tiling's (${how})`);
        }
      } finally {
        rt.synchronize();
        for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
        releaseChunkLists(rt, lists);
        kernel.release();
      }
    });
  }
  for (const label of ['wgmma-n128-s2-kv', 'wgmma-c3-n64-s3-kv']) {
    test(`buildSteps then attend (the bench's --split-steps) equal run(), ${label}`, (t) => {
      if (noWgmma) return t.skip(noWgmma);
      const { x, sel } = referenceOf(1);
      const tiling = ablationTiling(label);
      const whole = runGpu(x, sel, tiling);
      const apart = runGpu(x, sel, tiling, false, true);
      assert.equal(countNaN(apart), 0);
      assert.equal(bitForBit(apart, whole), 0, 'the two launches apart differ from run()');
    });
  }
  test('attend() refuses to run before buildSteps() and on another prompt shape', (t) => {
    if (noWgmma) return t.skip(noWgmma);
    const kernel = new BlockSparseWgmmaPrefill(rt, { numHeads: 4, numKvHeads: 2, headDim: 128 }, { blockN: 128, stages: 2 });
    const args = (n: number) => {
      const lists = uploadChunkLists(rt, packChunkLists(everyCausalChunk(n, 4)));
      return { q: 0n, k: 0n, v: 0n, out: 0n, lists, numQueries: n, kvLen: n, kvStride: n, scale: 1 };
    };
    const a = args(300), b = args(700);
    try {
      assert.throws(() => kernel.attend(a), /attend\(\) before buildSteps\(\)/);
      kernel.buildSteps(a);
      assert.throws(() => kernel.attend(b), /another prompt or list shape/);
    } finally {
      rt.synchronize();
      releaseChunkLists(rt, a.lists);
      releaseChunkLists(rt, b.lists);
      kernel.release();
    }
  });
});
