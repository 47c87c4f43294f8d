/**
 * What the entry-group proofs (bench/quest-split-proof.ts, bench/vertical-slash-split-proof.ts) share: a kernel
 * source as it was at a git ref, and a compile with the runtime's NVRTC options through nvcc, so a group's cubin
 * and the whole module's can be compared entry by entry (bench/quest-cubin-sections.ts). Runs here, no GPU.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '..');
const KERNELS = 'src/backends/cuda/kernels';

/** `file` (a .cu of the kernels folder) at `ref` with its local headers inlined from the same ref (readKernelSource's rule). */
export function kernelSourceAt(ref: string, file: string): string {
  const show = (name: string) => execFileSync('git', ['show', `${ref}:${KERNELS}/${name}`], { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 26 });
  return show(file).replace(/^#include "([\w.-]+\.cuh)"[ \t]*$/gm, (_l, header: string) => show(header).replace(/^#pragma once[ \t]*$/m, ''));
}

/**
 * The runtime's compile (runtime.ts, nvrtc.ts: --gpu-architecture=sm_90 --std=c++17, defines, -lineinfo) through
 * nvcc, of `source` written to DIR/LABEL.cu: the cubin and the compile's seconds.
 */
export function compileAsRuntime(dir: string, label: string, source: string, defines: Record<string, number>): { image: Buffer; seconds: number } {
  const src = join(dir, `${label}.cu`), out = join(dir, `${label}.cubin`);
  writeFileSync(src, source);
  const t0 = performance.now();
  execFileSync('nvcc', ['-arch=sm_90', '--cubin', '--std=c++17', ...Object.entries(defines).map(([k, v]) => `-D${k}=${v}`), '-lineinfo', '-o', out, src],
    { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 22 });
  return { image: readFileSync(out), seconds: (performance.now() - t0) / 1e3 };
}
