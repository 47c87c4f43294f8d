/**
 * Finds a kernel's .cu source beside its launcher. tsc does not copy .cu files, so from the compiled
 * launcher in dist/src/... the source is looked up in the matching src/... folder as well.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of `fileName` in src/backends/cuda/kernels/, from either src or dist. */
export function kernelSourcePath(fileName: string): string {
  const here = dirname(fileURLToPath(import.meta.url)); // .../src/backends/cuda or .../dist/src/backends/cuda
  const candidates = [join(here, 'kernels', fileName)];
  const distMarker = `${sep}dist${sep}src${sep}`;
  const at = here.lastIndexOf(distMarker);
  if (at >= 0) candidates.push(join(here.slice(0, at) + sep + 'src' + sep + here.slice(at + distMarker.length), 'kernels', fileName));
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(`CUDA kernel source ${fileName} not found (looked in ${candidates.join(', ')})`);
}

/**
 * The kernel's source with its local `#include "x.cuh"` lines replaced by those files' text, so NVRTC
 * needs no include path and the cache's source hash covers the helpers too.
 */
export function readKernelSource(fileName: string): string {
  const path = kernelSourcePath(fileName);
  const text = readFileSync(path, 'utf8');
  return text.replace(/^#include "([\w.-]+\.cuh)"[ \t]*$/gm, (_line, header: string) =>
    readFileSync(join(dirname(path), header), 'utf8').replace(/^#pragma once[ \t]*$/m, ''));
}
