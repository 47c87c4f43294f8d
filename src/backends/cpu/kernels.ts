/**
 * Matmul kernel choice by name. 'auto' is the single-threaded WebAssembly SIMD kernel where the runtime
 * supports it (5-10× the blocked JS kernel on this project's 2-core machine, see docs/perf.md), else
 * the blocked JS one. 'wasm-simd-threads' splits each product over all cores (worker threads over
 * one shared copy of the weights); it is not the default because on a 2-core machine shared with other
 * processes it only paid off for the largest prefill products (docs/perf.md).
 */
import { cpus } from 'node:os';
import { BlockedJsKernel, type MatmulKernel } from './matmul.js';
import { WasmSimdKernel, wasmSimdSupported } from './wasm-matmul.js';

export const MATMUL_KERNELS = ['auto', 'wasm-simd', 'wasm-simd-threads', 'js-blocked'] as const;
export type MatmulKernelName = (typeof MATMUL_KERNELS)[number];

/** Weights above this many bytes do not fit wasm32 memory next to the activations: 'auto' picks JS. */
export const WASM_WEIGHT_BYTES_LIMIT = 3.5 * 2 ** 30;

/**
 * A fresh kernel instance (the wasm kernel owns its memory: one per model). `weightBytes`: the f32
 * size of the matrices the model will prepare, so that 'auto' can avoid a kernel they cannot fit.
 */
export function createMatmulKernel(name: MatmulKernelName | string = 'auto', weightBytes = 0): MatmulKernel {
  switch (name) {
    case 'auto':
      return wasmSimdSupported() && weightBytes <= WASM_WEIGHT_BYTES_LIMIT ? new WasmSimdKernel() : new BlockedJsKernel();
    case 'wasm-simd':
      if (!wasmSimdSupported()) throw new Error('this runtime does not support WebAssembly SIMD; use --kernel js-blocked');
      return new WasmSimdKernel();
    case 'wasm-simd-threads':
      if (!wasmSimdSupported()) throw new Error('this runtime does not support WebAssembly SIMD; use --kernel js-blocked');
      return new WasmSimdKernel({ threads: Math.max(1, cpus().length) });
    case 'js-blocked':
      return new BlockedJsKernel();
    default:
      throw new Error(`unknown matmul kernel "${name}" (choose one of: ${MATMUL_KERNELS.join(', ')})`);
  }
}
