/**
 * Matmul kernel choice by name. 'auto' is the WebAssembly SIMD kernel where the runtime supports it
 * (4-6× the blocked JS kernel on this project's CI machine, see docs/perf.md), else the blocked JS one.
 */
import { BlockedJsKernel, type MatmulKernel } from './matmul.js';
import { WasmSimdKernel, wasmSimdSupported } from './wasm-matmul.js';

export const MATMUL_KERNELS = ['auto', 'wasm-simd', 'js-blocked'] as const;
export type MatmulKernelName = (typeof MATMUL_KERNELS)[number];

/** A fresh kernel instance (the wasm kernel owns its memory: one per model). */
export function createMatmulKernel(name: MatmulKernelName | string = 'auto'): MatmulKernel {
  switch (name) {
    case 'auto':
      return wasmSimdSupported() ? new WasmSimdKernel() : new BlockedJsKernel();
    case 'wasm-simd':
      if (!wasmSimdSupported()) throw new Error('this runtime does not support WebAssembly SIMD; use --kernel js-blocked');
      return new WasmSimdKernel();
    case 'js-blocked':
      return new BlockedJsKernel();
    default:
      throw new Error(`unknown matmul kernel "${name}" (choose one of: ${MATMUL_KERNELS.join(', ')})`);
  }
}
