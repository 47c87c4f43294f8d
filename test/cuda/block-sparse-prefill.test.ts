/**
 * GPU correctness of the block-sparse flash prefill (block_sparse_union + block_sparse_prefill) against
 * the CPU Block-Sparse method: same bf16-rounded inputs, the method's own chunk selection, the
 * method's float64 output as reference. The CTA unions the GPU builds are compared entry by entry with
 * the host reference (ctaUnion). Outputs are poisoned with NaN before each launch, so an unwritten
 * element fails. Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ChunkSelection, ctaUnion, packChunkLists } from '../../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../../src/backends/cuda/block-sparse-selection.js';
import { BlockSparseFlashPrefill, releaseChunkLists, uploadChunkLists } from '../../src/backends/cuda/kernels/block-sparse-prefill.js';
import { FlashPrefill } from '../../src/backends/cuda/kernels/flash-prefill.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { BlockSparsePrefill } from '../../src/methods/block-sparse.js';
import { type BlockSparseInputs, assertEmptyRowsAreZero, cpuCacheOf, handMadeEmptyRowSelection, randomBlockSparseInputs, selectionReference } from './block-sparse-inputs.js';
import { countNaN, relativeError } from './helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA block-sparse prefill tests');

// bf16 operands (and P rounded to bf16 before PV), as for the dense kernel.
const TOLERANCE = 1e-2;

describe('CUDA block-sparse prefill', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    console.log(`# device: ${rt.cuda.info.name} (${rt.cuda.info.arch}, ${rt.cuda.info.multiprocessors} SMs)`);
  });
  after(() => rt?.dispose());

  /** Runs union + attention over `sel` and returns [n, H, D]; checks the GPU unions against ctaUnion. */
  function runGpu(x: BlockSparseInputs, sel: ChunkSelection, headsPerCta: number, mTiles: number): Float32Array {
    const { n, H, Hkv, D, kvStride } = x;
    const kernel = new BlockSparseFlashPrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, { headsPerCta, mTiles });
    const host = packChunkLists(sel);
    const lists = uploadChunkLists(rt, host);
    const dq = uploadAsBf16(rt, x.q), dk = uploadAsBf16(rt, x.k), dv = uploadAsBf16(rt, x.v);
    const dout = poisonedBf16(rt, n * H * D);
    kernel.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, lists, numQueries: n, kvLen: n, kvStride, scale: 1 / Math.sqrt(D) });
    const out = downloadBf16(rt, dout, n * H * D);
    const { entries, counts, geometry: geo } = kernel.downloadUnion();
    for (let hg = 0; hg < geo.numHeadGroups; hg++) {
      for (let cr = 0; cr < geo.numCtaRows; cr++) {
        const cta = hg * geo.numCtaRows + cr;
        const expected = ctaUnion(host, geo, hg, cr);
        assert.equal(counts[cta], expected.length, `union size of CTA ${hg}/${cr}`);
        assert.deepEqual([...entries.subarray(cta * geo.unionStride, cta * geo.unionStride + counts[cta])], expected, `union of CTA ${hg}/${cr}`);
      }
    }
    for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
    releaseChunkLists(rt, lists);
    kernel.release();
    return out;
  }

  const methodCases = [
    { n: 1000, H: 8, Hkv: 2, D: 128, chunk: 16, top: 8, extraRows: 0, seed: 1, hpc: 1, mt: 1 },
    { n: 1000, H: 8, Hkv: 2, D: 128, chunk: 16, top: 8, extraRows: 0, seed: 1, hpc: 1, mt: 2 },
    { n: 1000, H: 8, Hkv: 2, D: 128, chunk: 16, top: 8, extraRows: 0, seed: 1, hpc: 4, mt: 2 }, // the GQA group in one CTA
    { n: 333, H: 4, Hkv: 4, D: 64, chunk: 16, top: 5, extraRows: 3, seed: 2, hpc: 1, mt: 2 }, // partial last chunk, no GQA
    { n: 333, H: 4, Hkv: 4, D: 64, chunk: 16, top: 5, extraRows: 3, seed: 2, hpc: 1, mt: 1 },
    { n: 250, H: 6, Hkv: 2, D: 128, chunk: 16, top: 100, extraRows: 0, seed: 3, hpc: 1, mt: 2 }, // t >= chunks: dense causal
    { n: 517, H: 4, Hkv: 1, D: 64, chunk: 32, top: 6, extraRows: 0, seed: 4, hpc: 2, mt: 2 }, // c = 32: two tiles per chunk
    { n: 2048, H: 4, Hkv: 2, D: 128, chunk: 16, top: 20, extraRows: 5, seed: 5, hpc: 2, mt: 1 },
    { n: 2048, H: 4, Hkv: 2, D: 128, chunk: 16, top: 20, extraRows: 5, seed: 5, hpc: 2, mt: 2 },
    { n: 700, H: 4, Hkv: 1, D: 128, chunk: 64, top: 4, extraRows: 0, seed: 6, hpc: 1, mt: 2 }, // c = 64: a chunk spans 2 warps
  ];
  for (const c of methodCases) {
    test(`n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D} c=${c.chunk} t=${c.top} heads/CTA=${c.hpc} tiles/warp=${c.mt} vs the CPU method`, () => {
      const x = randomBlockSparseInputs(c.n, c.H, c.Hkv, c.D, c.extraRows, c.seed);
      const cache = cpuCacheOf(x);
      const shape = { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D, scale: 1 / Math.sqrt(c.D), slidingWindow: null, logitSoftcap: null };
      const ref = new Float32Array(c.n * c.H * c.D);
      new BlockSparsePrefill(c.chunk, null, c.top).prefill({
        layer: 0, shape, queries: x.q, numQueries: c.n, queryStart: 0, cache, out: ref, isLastChunk: true,
      });
      const sel = selectBlockSparseChunks(
        new BlockSparsePrefill(c.chunk, null, c.top), x.q, cache.keys.map((k) => k.subarray(0, c.n * c.D)), c.n, c.H, c.D);
      const out = runGpu(x, sel, c.hpc, c.mt);
      assert.equal(countNaN(out), 0, 'every output element must be written');
      const err = relativeError(out, ref);
      console.log(`#   rel err ${err.toExponential(2)}`);
      assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
    });
  }

  test('a list of every causal chunk equals the dense flash kernel (last partial block, GQA)', () => {
    const x = randomBlockSparseInputs(555, 8, 2, 128, 0, 11);
    const B = Math.ceil(555 / 16);
    const heads = Array.from({ length: 8 }, () => {
      const selected = new Int32Array(B * B), counts = new Int32Array(B);
      for (let m = 0; m < B; m++) {
        for (let j = 0; j <= m; j++) selected[m * B + j] = j;
        counts[m] = m + 1;
      }
      return { selected, counts, stride: B };
    });
    const out = runGpu(x, { chunkSize: 16, numTokens: 555, heads }, 4, 2);
    const dense = new FlashPrefill(rt, { numHeads: 8, numKvHeads: 2, headDim: 128 });
    const dq = uploadAsBf16(rt, x.q), dk = uploadAsBf16(rt, x.k), dv = uploadAsBf16(rt, x.v);
    const dout = poisonedBf16(rt, 555 * 8 * 128);
    dense.run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: dout.ptr, numQueries: 555, queryStart: 0, kvLen: 555, kvStride: 555, scale: 1 / Math.sqrt(128) });
    const ref = downloadBf16(rt, dout, 555 * 8 * 128);
    for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
    assert.equal(countNaN(out), 0);
    const err = relativeError(out, ref);
    console.log(`#   block-sparse vs dense flash: rel diff ${err.toExponential(2)}`);
    assert.ok(err < 2e-3, `block-sparse with every chunk differs from dense flash by ${err}`);
  });

  for (const [hpc, mt] of [[1, 1], [2, 2], [1, 2]]) {
    test(`empty rows write zeros; other rows attend exactly their lists (hand-made selection, heads/CTA=${hpc}, tiles/warp=${mt})`, () => {
      const x = randomBlockSparseInputs(90, 4, 2, 128, 0, 6);
      const sel = handMadeEmptyRowSelection(90, 4);
      const ref = selectionReference(x, sel); // float64 softmax over each query's own key set
      const out = runGpu(x, sel, hpc, mt);
      assert.equal(countNaN(out), 0, 'every output element must be written');
      assertEmptyRowsAreZero(out, x, sel);
      const err = relativeError(out, ref);
      console.log(`#   rel err ${err.toExponential(2)}`);
      assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
    });
  }
});
