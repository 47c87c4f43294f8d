/**
 * wgmma operand layouts and shared-memory descriptors (wgmma.cuh) against a host product, in exactly
 * the two forms the wgmma prefill kernel uses: S = Q·Kᵀ with both operands K-major in shared memory,
 * and O = P·V with P in registers and V MN-major (transpose bit). Each product runs with the
 * production descriptors and with a few alternative leading/stride byte offsets; the test prints which
 * settings give the right product (so a wrong guess is diagnosed in one device call) and requires the
 * production one to be right. Needs a compute capability 9.0 GPU; skipped with the reason elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import type { CudaKernel } from '../../src/backends/cuda/module.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadF32, poisonedF32, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# wgmma probe tests skipped: ${skip}`);

/** [rows][cols] = a[rows][inner] · b[inner][cols] (bT: b given as [cols][inner]). */
function hostProduct(a: Float32Array, b: Float32Array, rows: number, inner: number, cols: number, bTransposed: boolean): Float32Array {
  const c = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      let acc = 0;
      for (let k = 0; k < inner; k++) acc += a[r * inner + k] * (bTransposed ? b[j * inner + k] : b[k * cols + j]);
      c[r * cols + j] = acc;
    }
  }
  return c;
}

interface Setting { label: string; lead: number; stride: number; kStep: number }

// Production first (lead < 0: the kernel's own wgmma.cuh descriptors), then alternatives to diagnose.
const QK_SETTINGS: Setting[] = [
  { label: 'production (K-major: lead 16, stride 1024, k-step 32 B)', lead: -1, stride: -1, kStep: 32 },
  { label: 'lead 1024, stride 16', lead: 1024, stride: 16, kStep: 32 },
  { label: 'lead 0, stride 1024', lead: 0, stride: 1024, kStep: 32 },
  { label: 'lead 16, stride 1024, k-step 16 B', lead: 16, stride: 1024, kStep: 16 },
];
const PV_SETTINGS: Setting[] = [
  { label: 'production (MN-major: lead = half 8192, stride 1024)', lead: -1, stride: -1, kStep: 0 },
  { label: 'lead 1024, stride 8192 (swapped)', lead: 1024, stride: 8192, kStep: 0 },
  { label: 'lead 8192, stride 128', lead: 8192, stride: 128, kStep: 0 },
  { label: 'lead 128, stride 1024', lead: 128, stride: 1024, kStep: 0 },
];

describe('wgmma probe (sm_90a descriptors)', { skip }, () => {
  let rt: CudaRuntime;
  let hopper = true;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    const [major, minor] = rt.cuda.info.computeCapability;
    hopper = major === 9 && minor === 0;
    if (!hopper) console.log(`# wgmma probe: ${rt.cuda.info.name} is compute capability ${major}.${minor}, not 9.0; nothing to check`);
  });
  after(() => rt?.dispose());

  function runSettings(kernelName: string, settings: Setting[], a: Float32Array, b: Float32Array, ref: Float32Array): boolean[] {
    const kernel: CudaKernel = rt.module('wgmma-probe.cu', {}, { arch: 'sm_90a' })
      .kernel(kernelName, ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32']);
    const da = uploadAsBf16(rt, a), db = uploadAsBf16(rt, b);
    const right: boolean[] = [];
    try {
      for (const s of settings) {
        const dc = poisonedF32(rt, ref.length);
        kernel.launch({ grid: [1, 1, 1], block: [128, 1, 1], sharedBytes: 0, stream: rt.stream }, [da.ptr, db.ptr, dc.ptr, s.lead, s.stride, s.kStep]);
        const c = downloadF32(rt, dc, ref.length);
        rt.pool.release(dc);
        const nan = countNaN(c);
        const err = nan > 0 ? NaN : relativeError(c, ref);
        right.push(err < 1e-4);
        console.log(`#   ${kernelName} ${s.label}: ${nan > 0 ? `${nan} NaN` : `rel err ${err.toExponential(2)}`} -> ${err < 1e-4 ? 'RIGHT' : 'wrong'}`);
      }
    } finally {
      rt.pool.release(da);
      rt.pool.release(db);
    }
    return right;
  }

  test('S = Q·Kᵀ, both K-major in 128-byte-swizzled shared memory (m64n64k16, 8 k-steps over d = 128)', (t) => {
    if (!hopper) return t.skip('not compute capability 9.0');
    const rand = randomGenerator(91);
    const a = randomBf16Values(64 * 128, rand, 1); // [64][128]
    const b = randomBf16Values(64 * 128, rand, 1); // [64 keys][128]
    const right = runSettings('wgmma_probe_qk', QK_SETTINGS, a, b, hostProduct(a, b, 64, 128, 64, true));
    assert.ok(right[0], 'the production K-major descriptor gives a wrong product (see the settings above)');
  });

  test('O = P·V, P from registers, V MN-major in 128-byte-swizzled shared memory (m64n128k16, 4 k-steps)', (t) => {
    if (!hopper) return t.skip('not compute capability 9.0');
    const rand = randomGenerator(92);
    const p = randomBf16Values(64 * 64, rand, 1); // [64][64 keys]
    const v = randomBf16Values(64 * 128, rand, 1); // [64 keys][128]
    const right = runSettings('wgmma_probe_pv', PV_SETTINGS, p, v, hostProduct(p, v, 64, 64, 128, false));
    assert.ok(right[0], 'the production MN-major descriptor gives a wrong product (see the settings above)');
  });
});
