/**
 * `npm run bench -- <name> [args]`: runs one benchmark suite. Each suite validates its kernels against
 * a reference before timing them (llm.c's dev/cuda pattern). Add a suite with one entry below.
 */
import { runCpuBench } from './cpu.js';

const suites: Record<string, { describe: string; run: (args: string[]) => Promise<void> | void }> = {
  cpu: { describe: 'CPU matmul kernels (GFLOP/s vs peak) and tiny-model prefill/decode tokens/s', run: runCpuBench },
  model: { describe: 'CUDA whole model: prefill / decode tokens/s of 7-8B shapes with random weights (GPU only; HF peer: tools/device)', run: async (a) => (await import('./model.js')).runModelBench(a) },
  attention: { describe: 'CUDA flash prefill / decode attention vs floors (GPU only; SDPA peer: tools/device)', run: async (a) => (await import('./attention.js')).runAttentionBench(a) },
};

const [name, ...args] = process.argv.slice(2);
const suite = name ? suites[name] : undefined;
if (!suite) {
  const list = Object.entries(suites).map(([n, s]) => `  ${n.padEnd(8)} ${s.describe}`).join('\n');
  process.stderr.write(`${name ? `unknown bench "${name}"` : 'which bench?'}\nusage: npm run bench -- <name>\n${list}\n`);
  process.exit(1);
}
await suite.run(args);
