/**
 * Every kernel variant the launchers can request compiles for sm_90 (sm_90a for the wgmma kernels) with nvcc, with no register
 * spills or local-memory stack, so no compile error costs GPU time. Runs where nvcc exists (the
 * development machines); skipped with a message elsewhere. The sources are compiled exactly as NVRTC
 * sees them (local headers inlined).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { kernelSourcePath, readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { assertCompilesClean, nvccPresent } from './kernel-source-text.js';



const skip = nvccPresent() ? false : 'nvcc not found on PATH';
if (skip) console.log(`# CUDA kernel compile checks skipped: ${skip}`);

interface Variant {
  file: string;
  defines: Record<string, number>;
  /** sincosf's slow path for huge angles keeps its reduction table on the stack: allowed, no spills. */
  allowStack?: boolean;
  /** 'sm_90a' for kernels with Hopper's architecture-specific instructions (wgmma); default sm_90. */
  arch?: 'sm_90a';
}

/** The variants the tests and benchmarks launch. */
const VARIANTS: Variant[] = [
  { file: 'flash-prefill.cu', defines: { HEAD_DIM: 128, WARPS: 4, M_TILES: 1, BLOCK_N: 64 } },
  { file: 'flash-prefill.cu', defines: { HEAD_DIM: 128, WARPS: 4, M_TILES: 2, BLOCK_N: 64 } },
  { file: 'flash-prefill.cu', defines: { HEAD_DIM: 128, WARPS: 4, M_TILES: 2, BLOCK_N: 64, BLOCK_ORDER: 1 } },
  { file: 'flash-prefill.cu', defines: { HEAD_DIM: 128, WARPS: 8, M_TILES: 2, BLOCK_N: 64, BLOCK_ORDER: 1 } },
  { file: 'flash-prefill.cu', defines: { HEAD_DIM: 128, WARPS: 8, M_TILES: 2, BLOCK_N: 32 } },
  { file: 'flash-prefill.cu', defines: { HEAD_DIM: 64, WARPS: 4, M_TILES: 2, BLOCK_N: 64 } },
  { file: 'flash-prefill.cu', defines: { HEAD_DIM: 256, WARPS: 4, M_TILES: 1, BLOCK_N: 32 } },
  { file: 'block-sparse-prefill.cu', defines: { HEAD_DIM: 128, HEADS_PER_CTA: 1, M_TILES: 1 } },
  { file: 'block-sparse-prefill.cu', defines: { HEAD_DIM: 128, HEADS_PER_CTA: 1, M_TILES: 2 } },
  { file: 'block-sparse-prefill.cu', defines: { HEAD_DIM: 128, HEADS_PER_CTA: 2, M_TILES: 1 } },
  { file: 'block-sparse-prefill.cu', defines: { HEAD_DIM: 128, HEADS_PER_CTA: 2, M_TILES: 2 } },
  { file: 'block-sparse-prefill.cu', defines: { HEAD_DIM: 128, HEADS_PER_CTA: 4, M_TILES: 2 } },
  { file: 'block-sparse-prefill.cu', defines: { HEAD_DIM: 64, HEADS_PER_CTA: 1, M_TILES: 1 } },
  { file: 'block-sparse-prefill.cu', defines: { HEAD_DIM: 64, HEADS_PER_CTA: 1, M_TILES: 2 } },
  { file: 'block-sparse-prefill.cu', defines: { HEAD_DIM: 64, HEADS_PER_CTA: 2, M_TILES: 2 } },
  { file: 'block-sparse-estimate.cu', defines: {} },
  { file: 'vertical-slash-estimate.cu', defines: { HEAD_DIM: 128 } },
  { file: 'vertical-slash-estimate.cu', defines: { HEAD_DIM: 64 } },
  { file: 'vertical-slash-index.cu', defines: {} },
  { file: 'flexprefill-coverage.cu', defines: {} },
  { file: 'vertical-slash-search.cu', defines: {} },
  { file: 'vertical-slash-search.cu', defines: { VS_SEARCH_TIMING: 1 } },
  { file: 'vertical-slash-search.cu', defines: { VS_SEARCH_ENTRIES: 1 } },
  { file: 'vertical-slash-search.cu', defines: { VS_SEARCH_ENTRIES: 2 } },
  { file: 'vertical-slash-search.cu', defines: { VS_SEARCH_ENTRIES: 6 } },
  { file: 'vertical-slash-search.cu', defines: { VS_SEARCH_ENTRIES: 8, VS_SEARCH_TIMING: 1 } },
  { file: 'vertical-slash-prefill.cu', defines: { HEAD_DIM: 128, M_TILES: 1 } },
  { file: 'vertical-slash-prefill.cu', defines: { HEAD_DIM: 128, M_TILES: 2 } },
  { file: 'vertical-slash-prefill.cu', defines: { HEAD_DIM: 64, M_TILES: 1 } },
  { file: 'vertical-slash-prefill.cu', defines: { HEAD_DIM: 64, M_TILES: 2 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 256, GROUP: 4 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 4 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 8 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 64, GROUP: 1 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 64, GROUP: 8 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 4, DECODE_THREADS: 256, DECODE_UNROLL: 2 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 256, GROUP: 4, DECODE_THREADS: 256, DECODE_UNROLL: 2 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 64, GROUP: 8, DECODE_THREADS: 128, DECODE_UNROLL: 2 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 4, DECODE_THREADS: 256, DECODE_UNROLL: 2, DECODE_FUSED: 1 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 4, DECODE_THREADS: 256, DECODE_UNROLL: 2, DECODE_FUSED: 2 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 64, GROUP: 8, DECODE_THREADS: 128, DECODE_UNROLL: 2, DECODE_FUSED: 2 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 256, GROUP: 4, DECODE_THREADS: 128, DECODE_UNROLL: 4, DECODE_FUSED: 1 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 4, DECODE_THREADS: 256, DECODE_UNROLL: 2, DECODE_STAGES: 4 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 4, DECODE_THREADS: 256, DECODE_UNROLL: 2, DECODE_STAGES: 6, DECODE_FUSED: 1 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 4, DECODE_THREADS: 256, DECODE_UNROLL: 2, DECODE_STAGES: 8 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 4, DECODE_THREADS: 128, DECODE_UNROLL: 2, DECODE_STAGES: 4 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 64, GROUP: 8, DECODE_THREADS: 128, DECODE_UNROLL: 4, DECODE_STAGES: 3 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 64, GROUP: 8, DECODE_THREADS: 128, DECODE_UNROLL: 2, DECODE_STAGES: 4 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 256, GROUP: 4, DECODE_THREADS: 256, DECODE_UNROLL: 2, DECODE_STAGES: 4 } },
  // v8: thread-block clusters merging through distributed shared memory (decode_cluster only).
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 4, DECODE_THREADS: 512, DECODE_UNROLL: 2, DECODE_CLUSTER: 16 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 128, GROUP: 2, DECODE_THREADS: 256, DECODE_UNROLL: 2, DECODE_CLUSTER: 16, DECODE_SUBSETS: 2 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 64, GROUP: 8, DECODE_THREADS: 256, DECODE_UNROLL: 2, DECODE_CLUSTER: 8 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 256, GROUP: 2, DECODE_THREADS: 512, DECODE_UNROLL: 2, DECODE_CLUSTER: 16 } },
  { file: 'decode-attention.cu', defines: { HEAD_DIM: 64, GROUP: 1, DECODE_THREADS: 512, DECODE_UNROLL: 2, DECODE_CLUSTER: 4 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 128, GROUP: 4, SEG_THREADS: 256, SEG_UNROLL: 2 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 128, GROUP: 4, SEG_THREADS: 256, SEG_UNROLL: 2, SEG_STAGES: 4 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 128, GROUP: 1, SEG_THREADS: 256, SEG_UNROLL: 2, SEG_STAGES: 4 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 128, GROUP: 8, SEG_THREADS: 128, SEG_UNROLL: 4, SEG_STAGES: 4 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 64, GROUP: 2, SEG_THREADS: 256, SEG_UNROLL: 2, SEG_STAGES: 4 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 64, GROUP: 8, SEG_THREADS: 128, SEG_UNROLL: 4, SEG_STAGES: 4 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 128, GROUP: 4, SEG_THREADS: 128, SEG_UNROLL: 4 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 128, GROUP: 8, SEG_THREADS: 128, SEG_UNROLL: 4 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 128, GROUP: 1, SEG_THREADS: 256, SEG_UNROLL: 2 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 64, GROUP: 2, SEG_THREADS: 256, SEG_UNROLL: 2 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 64, GROUP: 8, SEG_THREADS: 128, SEG_UNROLL: 4 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 128, GROUP: 4, SEG_THREADS: 256, SEG_UNROLL: 2, SEG_DEVICE_TAIL: 1 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 128, GROUP: 4, SEG_THREADS: 256, SEG_UNROLL: 2, SEG_STAGES: 4, SEG_DEVICE_TAIL: 1 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 64, GROUP: 2, SEG_THREADS: 256, SEG_UNROLL: 2, SEG_DEVICE_TAIL: 1 } },
  { file: 'segment-decode.cu', defines: { HEAD_DIM: 64, GROUP: 2, SEG_THREADS: 256, SEG_UNROLL: 2, SEG_STAGES: 4, SEG_DEVICE_TAIL: 1 } },
  { file: 'quest.cu', defines: {} },
  { file: 'snapkv.cu', defines: { HEAD_DIM: 128 } },
  { file: 'snapkv.cu', defines: { HEAD_DIM: 64 } },
  { file: 'elementwise.cu', defines: {}, allowStack: true },
  { file: 'kv-append.cu', defines: {} },
  { file: 'model-ops.cu', defines: {}, allowStack: true },
  { file: 'small-head-attention.cu', defines: {} },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 2, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 0, WGMMA_VERSION: 2, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, BLOCK_ORDER: 1, WGMMA_VERSION: 2, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 2, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 64, BLOCK_ORDER: 1, WGMMA_VERSION: 2, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 1, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, BLOCK_ORDER: 1, WGMMA_VERSION: 1, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 64, BLOCK_ORDER: 1, WGMMA_VERSION: 1, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 0, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 64, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 3, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 64, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 3, Q_IN_REGS: 0, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 1, WARP_ARRIVALS: 0 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 1 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 1, WARP_ARRIVALS: 1 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 64, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 1, WARP_ARRIVALS: 1 }, arch: 'sm_90a' },
  // Sink + local on the dense kernel (flash-prefill-wgmma-sink-local.ts): its default tiling, both head dims.
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 1, SINK_LOCAL: 1 }, arch: 'sm_90a' },
  { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 128, BLOCK_ORDER: 1, WGMMA_VERSION: 3, KV_STAGES: 2, Q_IN_REGS: 0, WARP_ARRIVALS: 1, SINK_LOCAL: 1 }, arch: 'sm_90a' },
  { file: 'wgmma-probe.cu', defines: {}, arch: 'sm_90a' },
  // Block-sparse prefill on wgmma (block-sparse-prefill-wgmma.ts): 64- and 128-key steps, 2-4 stages.
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, KV_STAGES: 3 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, KV_STAGES: 2 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, KV_STAGES: 4 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, KV_STAGES: 2 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, KV_STAGES: 3 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 64, KV_STAGES: 3 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 128, KV_STAGES: 2 }, arch: 'sm_90a' },
  // ... with three consumer warpgroups (192-row CTAs, 152 registers a consumer thread): 64-key steps only.
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, KV_STAGES: 2, CONSUMERS: 3 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, KV_STAGES: 3, CONSUMERS: 3 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, KV_STAGES: 4, CONSUMERS: 3 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 64, KV_STAGES: 3, CONSUMERS: 3 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 64, BLOCK_N: 64, KV_STAGES: 4, CONSUMERS: 3 }, arch: 'sm_90a' },
  // ... in the KV-head-major block order (ctaOrder 'kv', docs/perf.md "Session 5"): both automatic tilings.
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 64, KV_STAGES: 3, CONSUMERS: 3, CTA_ORDER: 1 }, arch: 'sm_90a' },
  { file: 'block-sparse-prefill-wgmma.cu', defines: { HEAD_DIM: 128, BLOCK_N: 128, KV_STAGES: 2, CTA_ORDER: 1 }, arch: 'sm_90a' },
  // Vertical-slash prefill on wgmma (vertical-slash-prefill-wgmma.ts): 64-key steps, 2-4 stages.
  { file: 'vertical-slash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, KV_STAGES: 3 }, arch: 'sm_90a' },
  { file: 'vertical-slash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, KV_STAGES: 2 }, arch: 'sm_90a' },
  { file: 'vertical-slash-prefill-wgmma.cu', defines: { HEAD_DIM: 128, KV_STAGES: 4 }, arch: 'sm_90a' },
  { file: 'vertical-slash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, KV_STAGES: 3 }, arch: 'sm_90a' },
  { file: 'vertical-slash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, KV_STAGES: 2 }, arch: 'sm_90a' },
  { file: 'vertical-slash-prefill-wgmma.cu', defines: { HEAD_DIM: 64, KV_STAGES: 4 }, arch: 'sm_90a' },
];

describe('CUDA kernels compile for sm_90 (nvcc)', { skip }, () => {
  const dir = skip ? '' : mkdtempSync(join(tmpdir(), 'sf-nvcc-'));
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  for (const v of VARIANTS) {
    const label = `${v.file} ${Object.entries(v.defines).map(([k, x]) => `${k}=${x}`).join(' ')}${v.arch ? ` (${v.arch})` : ''}`;
    test(label, async () => {
      const src = join(dir, `${label.replace(/[^\w]+/g, '_')}.cu`);
      await assertCompilesClean(src, readKernelSource(v.file), v.defines, label, { arch: v.arch === 'sm_90a' ? 'sm_90a' : 'sm_90', allowStack: v.allowStack });
    });
  }
});

// nvcc and NVRTC differ: NVRTC (what the backend compiles with, absent from the development machines)
// takes a generic lambda's call operator (`[&](auto x) { … }`) for a host function and refuses the
// source, which nvcc accepts. Session 5 lost a device call's Vertical-Slash tests to one; this check
// runs everywhere.
test('no kernel source uses a generic lambda (NVRTC refuses them in device code)', () => {
  const dir = dirname(kernelSourcePath('common.cuh'));
  const files = readdirSync(dir).filter((f) => f.endsWith('.cu'));
  assert.ok(files.length > 10, `kernel sources not found in ${dir}`);
  for (const file of files) {
    const lines = readKernelSource(file).split('\n');
    const found = lines.findIndex((l) => /\]\s*\(\s*(const\s+)?auto\b/.test(l.replace(/\/\/.*$/, '')));
    assert.equal(found, -1, `${file} (headers inlined), line ${found + 1}: a generic lambda: ${lines[found]?.trim()}`);
  }
});
