/**
 * nvcc compile check of the sink + local window kernel's opt-in variants (flash-prefill-wgmma.cu with
 * SINK_LOCAL and SINK_FOLD, SINK_PERSIST, SINK_MASK; the default variant is in kernels-compile.test.ts): sm_90a, both head dims,
 * no register spills, no stack, no warnings, no serialised wgmma. Skipped with a message where nvcc is absent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { assertCompilesClean, nvccPresent } from './kernel-source-text.js';

const skip = nvccPresent() ? false : 'nvcc not found on PATH';
if (skip) console.log(`# sink-local variant compile checks skipped: ${skip}`);

/** The defines WgmmaSinkLocalPrefill passes for its default tiling, plus each variant's (both flags at both head dims). */
const FLAGS: Record<string, number>[] = [
  { HEAD_DIM: 128, SINK_FOLD: 1 }, { HEAD_DIM: 64, SINK_PERSIST: 1 },
  { HEAD_DIM: 128, SINK_FOLD: 1, SINK_PERSIST: 1 }, { HEAD_DIM: 64, SINK_FOLD: 1, SINK_PERSIST: 1 },
  { HEAD_DIM: 128, SINK_FOLD: 1, SINK_MASK: 1 }, { HEAD_DIM: 64, SINK_MASK: 1 }, { HEAD_DIM: 128, SINK_FOLD: 1, SINK_MASK: 2 },
  { HEAD_DIM: 128, SINK_FOLD: 1, SINK_MASK: 3 }, { HEAD_DIM: 64, SINK_FOLD: 1, SINK_PERSIST: 1, SINK_MASK: 3 },
];
const VARIANTS: Record<string, number>[] = FLAGS.map(({ HEAD_DIM, ...flags }) => ({
  HEAD_DIM, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 1, SINK_LOCAL: 1, ...flags,
}));

describe('sink-local window kernel variants compile for sm_90a (nvcc)', { skip }, () => {
  const dir = skip ? '' : mkdtempSync(join(tmpdir(), 'sf-sl-nvcc-'));
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
  for (const defines of VARIANTS) {
    const label = Object.entries(defines).map(([k, x]) => `${k}=${x}`).join(' ');
    test(label, async () => {
      const src = join(dir, `${label.replace(/[^\w]+/g, '_')}.cu`);
      await assertCompilesClean(src, readKernelSource('flash-prefill-wgmma.cu'), defines, label);
    });
  }
});
