/**
 * The GPU side of `sparse-frontier generate --backend cpu|cuda|auto`. Returns false when the CPU
 * engine should run (--backend cpu, or auto without a usable GPU, which it says on stderr); otherwise
 * loads the checkpoint onto the GPU, generates and prints what the CPU path prints. The CUDA modules
 * are imported only here, so the CPU path never loads the driver bindings.
 */
import { createAttentionPlan } from '../../methods/index.js';
import type { PlanOptions } from '../../methods/types.js';

export interface BackendChoiceOptions {
  backend: string;
  model: string;
  prompt: string[];
  maxNewTokens: string;
  chat?: boolean;
  chunkSize: string;
  method: string;
  sparsity?: string;
}

export const BACKENDS = ['cpu', 'cuda', 'auto'] as const;

/** `out` receives the report (stdout by default; tests pass a collector). */
export async function runOnCudaIfChosen(opts: BackendChoiceOptions, out: { write(text: string): unknown } = process.stdout): Promise<boolean> {
  if (!(BACKENDS as readonly string[]).includes(opts.backend)) throw new Error(`--backend must be one of ${BACKENDS.join(', ')}, got "${opts.backend}"`);
  if (opts.backend === 'cpu') return false;
  const { isCudaAvailable, cudaUnavailableReason } = await import('./availability.js');
  if (!isCudaAvailable()) {
    if (opts.backend === 'cuda') throw new Error(`--backend cuda: no usable CUDA device (${cudaUnavailableReason()})`);
    process.stderr.write(`backend auto: CPU (no usable CUDA device: ${cudaUnavailableReason()})\n`);
    return false;
  }
  const methodOptions = methodOptionsOf(opts);
  const { checkDeviceMethod, createDeviceAttentionPlan, hasDeviceMethod, noDeviceMethodMessage } = await import('./methods/index.js');
  if (!hasDeviceMethod(opts.method)) {
    if (opts.backend === 'cuda') throw new Error(`--backend cuda: ${noDeviceMethodMessage(opts.method)}`);
    process.stderr.write(`backend auto: CPU (${noDeviceMethodMessage(opts.method)})\n`);
    return false;
  }
  if (opts.backend === 'auto') process.stderr.write('backend auto: CUDA\n');
  const maxNewTokens = Number(opts.maxNewTokens);
  const chunkSize = Number(opts.chunkSize);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`--max-new-tokens must be a non-negative integer, got "${opts.maxNewTokens}"`);
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`--chunk-size must be a positive integer, got "${opts.chunkSize}"`);

  const { loadCheckpoint } = await import('../../engine/checkpoint.js');
  const { achievedSparsity } = await import('../../engine/forward-state.js');
  const { CudaRuntime } = await import('./runtime.js');
  const { CudaTransformerModel } = await import('./model.js');
  const { StoreWeightSource } = await import('./weight-source.js');
  const { generateTextOnDevice } = await import('./generate.js');
  const { PlanDeviceAttention } = await import('./methods/plan.js');
  const ckpt = loadCheckpoint(opts.model);
  checkDeviceMethod(ckpt.config, opts.method, methodOptions);
  const rt = new CudaRuntime();
  try {
    const t0 = performance.now();
    const source = new StoreWeightSource(rt, ckpt.weights);
    const plan = PlanDeviceAttention.onDevice(rt, ckpt.config, createDeviceAttentionPlan(rt, ckpt.config, opts.method, methodOptions));
    const model = new CudaTransformerModel(rt, ckpt.config, source, plan);
    const loadSeconds = (performance.now() - t0) / 1000;
    const results = generateTextOnDevice(model, ckpt.tokenizer, opts.prompt, { maxNewTokens, chunkSize, chat: opts.chat, stopTokenIds: ckpt.stopTokenIds });
    const fullLayers = ckpt.config.layerTypes.flatMap((t, l) => (t === 'full' ? [l] : []));
    const H = ckpt.config.numHeads;
    out.write(
      `model ${ckpt.config.hfArchitecture} from ${ckpt.dir} on ${rt.cuda.info.name} (${(model.weightBytes / 2 ** 30).toFixed(2)} GiB bf16 weights, ` +
        `${source.counts.raw} tensors uploaded as stored, ${source.counts.converted} converted, in ${loadSeconds.toFixed(2)} s); attention: ${attentionLabel(plan.id)}\n`,
    );
    results.forEach((r, i) => {
      if (results.length > 1) out.write(`\n--- prompt ${i + 1} ---\n`);
      out.write(`${r.text}\n`);
      const decodeSteps = Math.max(0, r.generatedTokens - 1);
      out.write(
        `[prompt ${r.promptTokens} tokens, prefill ${rate(r.promptTokens, r.prefillSeconds)} tok/s (${r.prefillSeconds.toFixed(3)} s); ` +
          `generated ${r.generatedTokens} tokens (${r.stopReason}), decode ${rate(decodeSteps, r.decodeSeconds)} tok/s (${r.decodeSeconds.toFixed(3)} s); ` +
          `achieved sparsity on full-attention layers: prefill ${achievedSparsity(r.counts.prefill, fullLayers, H).toFixed(3)}, ` +
          `decode ${achievedSparsity(r.counts.decode, fullLayers, H).toFixed(3)}]\n`,
      );
    });
    plan.dispose();
    model.dispose();
  } finally {
    rt.dispose();
  }
  return true;
}

/** --method and --sparsity as registry options, with the CPU registry's errors for bad ones. */
function methodOptionsOf(opts: BackendChoiceOptions): PlanOptions {
  if (opts.method === 'dense') return {};
  let sparsity: number | undefined;
  if (opts.sparsity !== undefined) {
    sparsity = Number(opts.sparsity);
    if (!(sparsity >= 0 && sparsity < 1)) throw new Error(`--sparsity must be a number in [0, 1), got "${opts.sparsity}"`);
  }
  createAttentionPlan(opts.method, { sparsity });
  return { sparsity };
}

/** "dense/dense" → "dense"; otherwise "prefill X, decode Y" as the CPU path prints it. */
function attentionLabel(planId: string): string {
  const [prefill, decode] = planId.split('/');
  return prefill === 'dense' && decode === 'dense' ? 'dense' : `prefill ${prefill}, decode ${decode}`;
}

function rate(tokens: number, seconds: number): string {
  return seconds > 0 ? (tokens / seconds).toFixed(1) : '-';
}
