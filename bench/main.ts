/**
 * `npm run bench -- <name> [args]` (or `sparse-frontier bench <name> [args]`): runs one benchmark
 * suite. Each suite validates its kernels against a reference before timing them (llm.c's dev/cuda
 * pattern). Add a suite with one entry below. GPU suites import their modules lazily, so the CPU
 * suite never loads the CUDA driver bindings.
 */
import { pathToFileURL } from 'node:url';
import { runCpuBench } from './cpu.js';

export interface BenchSuite {
  describe: string;
  run: (args: string[]) => Promise<void> | void;
}

export const benchSuites: Record<string, BenchSuite> = {
  cpu: { describe: 'CPU matmul kernels (GFLOP/s vs peak) and tiny-model prefill/decode tokens/s', run: runCpuBench },
  model: { describe: 'CUDA whole model: prefill / decode tokens/s of 7-8B shapes with random weights (GPU only; HF peer: tools/device)', run: async (a) => (await import('./model.js')).runModelBench(a) },
  'decode-step-breakdown': { describe: 'CUDA whole-model decode step: time of each node kind alone, GEMM TB/s (GPU only)', run: async (a) => (await import('./decode-step-breakdown.js')).runDecodeBreakdownBench(a) },
  'cold-compile': { describe: 'CUDA first-run kernel compiles: each GPU method\'s first call from an empty kernel cache, then cached (GPU only)', run: async (a) => (await import('./cold-compile.js')).runColdCompileBench(a) },
  attention: { describe: 'CUDA flash prefill / decode attention vs floors (GPU only; SDPA peer: tools/device)', run: async (a) => (await import('./attention.js')).runAttentionBench(a) },
  sparse: { describe: 'CUDA sparse methods (GPU registry) vs dense and the ideal (1 - s) x dense, n 16K-128K (GPU only)', run: async (a) => (await import('./sparse.js')).runSparseBench(a) },
  'sparse-activations': {
    describe: 'CUDA sparse prefill methods on a trained model\'s captured q/k/v (models/organism, task prompts 4K-16K) beside random q/k/v (GPU only)',
    run: async (a) => (await import('./sparse-activations.js')).runSparseActivationsBench(a),
  },
};

/** The suite list as usage lines. */
export function benchUsage(): string {
  const width = Math.max(...Object.keys(benchSuites).map((n) => n.length));
  return Object.entries(benchSuites).map(([n, s]) => `  ${n.padEnd(width)}  ${s.describe}`).join('\n');
}

/** Runs the named suite; throws (naming the known suites) for an unknown name. */
export async function runBench(name: string | undefined, args: string[]): Promise<void> {
  const suite = name !== undefined && Object.hasOwn(benchSuites, name) ? benchSuites[name] : undefined;
  if (!suite) throw new Error(`${name ? `unknown bench "${name}"` : 'which bench?'}\n${benchUsage()}`);
  await suite.run(args);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [name, ...args] = process.argv.slice(2);
  try {
    await runBench(name, args);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\nusage: npm run bench -- <name>\n`);
    process.exit(1);
  }
}
