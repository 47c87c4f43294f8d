/**
 * The ablation variants of the wgmma block-sparse prefill (block-sparse-prefill-wgmma.cu's DEFER_PV,
 * LEAN_MASK, OWN_TURNS, IDLE_WARPS, ALL_COMPUTE, KV_SKEW, EARLY_K, CONTIG_FILL, ENT_GLOBAL, ENT_AHEAD; labels -dpv /
 * -lm / -ot / -iw / -ac / -sk / -ek / -cf / -eg / -ea) that the GPU tests and the bench launch compile for sm_90a with nvcc at head dims 64 and
 * 128: no register spills, no stack frame, no warning and no serialised wgmma chain (ptxas' "Potential
 * Performance Loss" info line), as kernels-compile.test.ts checks for the plain variants. Skipped with
 * a message where nvcc is absent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { kernelSourcePath, readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { parseBlockSparseWgmmaLabel, wgmmaAblationDefines } from '../../src/backends/cuda/kernels/block-sparse-prefill-wgmma.js';
import { BLOCK_SPARSE_ABLATION_LABELS } from './block-sparse-ablation-labels.js';
import { assertCompilesClean, nvccPresent } from './kernel-source-text.js';


const skip = nvccPresent() ? false : 'nvcc not found on PATH';
if (skip) console.log(`# block-sparse wgmma ablation compile checks skipped: ${skip}`);

/** The labels the GPU tests launch, and the bench's diagnostics beyond them. */
const LABELS = [
  ...BLOCK_SPARSE_ABLATION_LABELS,
  'wgmma-n128-s2-kv-lm-ac-cf-eg-ea', // bs2's s = 0 diagnostic: every piece off at once, no skip branch
];

describe('block-sparse wgmma ablation variants compile for sm_90a (nvcc)', { skip }, () => {
  const dir = skip ? '' : mkdtempSync(join(tmpdir(), 'sf-bs-ablation-'));
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
  const source = skip ? '' : readKernelSource('block-sparse-prefill-wgmma.cu');

  test('the kernel source is where the launcher looks', () => {
    assert.ok(kernelSourcePath('block-sparse-prefill-wgmma.cu').endsWith('block-sparse-prefill-wgmma.cu'));
  });

  for (const label of LABELS) {
    for (const headDim of [128, 64]) {
      test(`${label} D=${headDim}`, async () => {
        const t = parseBlockSparseWgmmaLabel(label);
        assert.ok(t, `${label} is a wgmma label`);
        const defines: Record<string, number> = {
          HEAD_DIM: headDim, BLOCK_N: t.blockN, KV_STAGES: t.stages, CONSUMERS: t.consumers,
          ...(t.ctaOrder === 'kv' ? { CTA_ORDER: 1 } : {}), ...wgmmaAblationDefines(t),
        };
        assert.ok(Object.keys(wgmmaAblationDefines(t)).length > 0, `${label} sets an ablation flag`);
        await assertCompilesClean(join(dir, `${label}-d${headDim}.cu`), source, defines, label);
      });
    }
  }
});
