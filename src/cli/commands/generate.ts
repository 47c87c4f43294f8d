/**
 * `sparse-frontier generate --model DIR --prompt "..."`: greedy completion of one or more prompts
 * (repeat --prompt to batch them) on the CPU engine with dense attention, printing each completion
 * and the prefill / decode speeds.
 */
import type { Command } from 'commander';
import { loadCheckpoint } from '../../engine/checkpoint.js';
import { TransformerModel, linearParameterCount } from '../../engine/model.js';
import { generateText } from '../../engine/generate.js';
import { createMatmulKernel, MATMUL_KERNELS } from '../../backends/cpu/kernels.js';
import { achievedSparsity } from '../../engine/forward-state.js';

interface GenerateCliOptions {
  model: string;
  prompt: string[];
  maxNewTokens: string;
  chat?: boolean;
  chunkSize: string;
  kernel: string;
}

function positiveInt(value: string, flag: string, allowZero = false): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) throw new Error(`${flag} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got "${value}"`);
  return n;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('Greedy generation on the CPU engine (dense attention); prints completions and tokens/s')
    .requiredOption('--model <dir>', 'checkpoint directory (config.json, safetensors, tokenizer files)')
    .requiredOption('--prompt <text>', 'prompt text (repeat to generate for several prompts in one batch)', collect, [])
    .option('--max-new-tokens <n>', 'generated tokens at most, per prompt', '128')
    .option('--chat', 'apply the tokenizer chat template (default when the tokenizer has one)')
    .option('--no-chat', 'feed the raw prompt (BOS added) without the chat template')
    .option('--chunk-size <n>', 'prefill chunk size in tokens', '512')
    .option('--kernel <name>', `matmul kernel: ${MATMUL_KERNELS.join(', ')}`, 'auto')
    .action((opts: GenerateCliOptions) => {
      const maxNewTokens = positiveInt(opts.maxNewTokens, '--max-new-tokens', true);
      const chunkSize = positiveInt(opts.chunkSize, '--chunk-size');
      const ckpt = loadCheckpoint(opts.model);
      const t0 = performance.now();
      const model = new TransformerModel(ckpt.config, ckpt.weights, { kernel: createMatmulKernel(opts.kernel, 4 * linearParameterCount(ckpt.config)) });
      const loadSeconds = (performance.now() - t0) / 1000;
      const results = generateText(model, ckpt.tokenizer, opts.prompt, {
        maxNewTokens, chunkSize, chat: opts.chat, stopTokenIds: ckpt.stopTokenIds,
      });
      const out = process.stdout;
      out.write(`model ${ckpt.config.hfArchitecture} from ${ckpt.dir} (weights to f32 and ${model.kernel.name} kernel in ${loadSeconds.toFixed(2)} s)\n`);
      results.forEach((r, i) => {
        if (results.length > 1) out.write(`\n--- prompt ${i + 1} ---\n`);
        out.write(`${r.text}\n`);
        const decodeSteps = Math.max(0, r.generatedTokens - 1); // the first token comes out of prefill
        out.write(
          `[prompt ${r.promptTokens} tokens, prefill ${rate(r.promptTokens, r.prefillSeconds)} tok/s (${r.prefillSeconds.toFixed(3)} s); ` +
            `generated ${r.generatedTokens} tokens (${r.stopReason}), decode ${rate(decodeSteps, r.decodeSeconds)} tok/s (${r.decodeSeconds.toFixed(3)} s); ` +
            `achieved sparsity prefill ${achievedSparsity(r.counts.prefill).toFixed(3)}, decode ${achievedSparsity(r.counts.decode).toFixed(3)}]\n`,
        );
      });
    });
}

function rate(tokens: number, seconds: number): string {
  return seconds > 0 ? (tokens / seconds).toFixed(1) : '-';
}
