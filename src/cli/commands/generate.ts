/**
 * `sparse-frontier generate --model DIR --prompt "..."`: greedy completion of one or more prompts
 * (repeat --prompt to batch them) on the CPU engine, dense attention unless --method names one from
 * the methods registry, printing each completion, the prefill / decode speeds and achieved sparsity.
 */
import type { Command } from 'commander';
import { loadCheckpoint } from '../../engine/checkpoint.js';
import { TransformerModel, linearParameterCount } from '../../engine/model.js';
import { generateText } from '../../engine/generate.js';
import { createMatmulKernel, MATMUL_KERNELS } from '../../backends/cpu/kernels.js';
import { achievedSparsity } from '../../engine/forward-state.js';
import { createAttentionPlan } from '../../methods/index.js';
import { runOnCudaIfChosen } from '../../backends/cuda/generate-command.js';

interface GenerateCliOptions {
  model: string;
  prompt: string[];
  maxNewTokens: string;
  chat?: boolean;
  chunkSize: string;
  kernel: string;
  method: string;
  sparsity?: string;
  backend: string;
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
    .description('Greedy generation on the CPU engine, or the GPU with --backend cuda|auto; prints completions and tokens/s')
    .requiredOption('--model <dir>', 'checkpoint directory (config.json, safetensors, tokenizer files)')
    .requiredOption('--prompt <text>', 'prompt text (repeat to generate for several prompts in one batch)', collect, [])
    .option('--max-new-tokens <n>', 'generated tokens at most, per prompt', '128')
    .option('--chat', 'apply the tokenizer chat template (default when the tokenizer has one)')
    .option('--no-chat', 'feed the raw prompt (BOS added) without the chat template')
    .option('--chunk-size <n>', 'prefill chunk size in tokens', '512')
    .option('--kernel <name>', `matmul kernel: ${MATMUL_KERNELS.join(', ')}`, 'auto')
    .option('--method <id>', 'attention method (see `sparse-frontier methods`); dense in the phase it does not cover', 'dense')
    .option('--sparsity <s>', 'target sparsity in [0, 1) for a sparse --method')
    .option('--backend <name>', 'cpu, cuda (whole model on the GPU; dense and the methods of docs/gpu-methods.md) or auto (cuda when a GPU is usable and runs the method)', 'cpu')
    .action(async (opts: GenerateCliOptions) => {
      if (await runOnCudaIfChosen(opts)) return;
      const maxNewTokens = positiveInt(opts.maxNewTokens, '--max-new-tokens', true);
      const chunkSize = positiveInt(opts.chunkSize, '--chunk-size');
      let sparsity: number | undefined;
      if (opts.sparsity !== undefined) {
        sparsity = Number(opts.sparsity);
        if (!(sparsity >= 0 && sparsity < 1)) throw new Error(`--sparsity must be a number in [0, 1), got "${opts.sparsity}"`);
      }
      const plan = createAttentionPlan(opts.method, opts.method === 'dense' ? {} : { sparsity });
      const ckpt = loadCheckpoint(opts.model);
      const t0 = performance.now();
      const model = new TransformerModel(ckpt.config, ckpt.weights, { kernel: createMatmulKernel(opts.kernel, 4 * linearParameterCount(ckpt.config)) });
      const loadSeconds = (performance.now() - t0) / 1000;
      const results = generateText(model, ckpt.tokenizer, opts.prompt, {
        maxNewTokens, chunkSize, chat: opts.chat, stopTokenIds: ckpt.stopTokenIds, plan,
      });
      const out = process.stdout;
      // Methods act on full-attention layers only (sliding layers run the dense windowed path).
      const fullLayers = ckpt.config.layerTypes.flatMap((t, l) => (t === 'full' ? [l] : []));
      const H = ckpt.config.numHeads;
      out.write(`model ${ckpt.config.hfArchitecture} from ${ckpt.dir} (weights to f32 and ${model.kernel.name} kernel in ${loadSeconds.toFixed(2)} s); attention: prefill ${plan.prefill.id}, decode ${plan.decode.id}\n`);
      results.forEach((r, i) => {
        if (results.length > 1) out.write(`\n--- prompt ${i + 1} ---\n`);
        out.write(`${r.text}\n`);
        const decodeSteps = Math.max(0, r.generatedTokens - 1); // the first token comes out of prefill
        out.write(
          `[prompt ${r.promptTokens} tokens, prefill ${rate(r.promptTokens, r.prefillSeconds)} tok/s (${r.prefillSeconds.toFixed(3)} s); ` +
            `generated ${r.generatedTokens} tokens (${r.stopReason}), decode ${rate(decodeSteps, r.decodeSeconds)} tok/s (${r.decodeSeconds.toFixed(3)} s); ` +
            `achieved sparsity on full-attention layers: prefill ${achievedSparsity(r.counts.prefill, fullLayers, H).toFixed(3)}, ` +
            `decode ${achievedSparsity(r.counts.decode, fullLayers, H).toFixed(3)}]\n`,
        );
      });
    });
}

function rate(tokens: number, seconds: number): string {
  return seconds > 0 ? (tokens / seconds).toFixed(1) : '-';
}
