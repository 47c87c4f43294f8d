/**
 * The GPU side of `sparse-frontier generate --backend cpu|cuda|auto`. Returns false when the CPU
 * engine should run (--backend cpu, or auto without a usable GPU, which it says on stderr); otherwise
 * loads the checkpoint onto the GPU, generates and prints what the CPU path prints. The CUDA modules
 * are imported only here, so the CPU path never loads the driver bindings.
 */
export interface BackendChoiceOptions {
  backend: string;
  model: string;
  prompt: string[];
  maxNewTokens: string;
  chat?: boolean;
  chunkSize: string;
  method: string;
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
  if (opts.method !== 'dense') throw new Error(`--backend ${opts.backend}: the GPU model runs dense attention only so far; use --backend cpu for --method ${opts.method}`);
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
  const ckpt = loadCheckpoint(opts.model);
  const rt = new CudaRuntime();
  try {
    const t0 = performance.now();
    const source = new StoreWeightSource(rt, ckpt.weights);
    const model = new CudaTransformerModel(rt, ckpt.config, source);
    const loadSeconds = (performance.now() - t0) / 1000;
    const results = generateTextOnDevice(model, ckpt.tokenizer, opts.prompt, { maxNewTokens, chunkSize, chat: opts.chat, stopTokenIds: ckpt.stopTokenIds });
    const fullLayers = ckpt.config.layerTypes.flatMap((t, l) => (t === 'full' ? [l] : []));
    const H = ckpt.config.numHeads;
    out.write(
      `model ${ckpt.config.hfArchitecture} from ${ckpt.dir} on ${rt.cuda.info.name} (${(model.weightBytes / 2 ** 30).toFixed(2)} GiB bf16 weights, ` +
        `${source.counts.raw} tensors uploaded as stored, ${source.counts.converted} converted, in ${loadSeconds.toFixed(2)} s); attention: dense\n`,
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
    model.dispose();
  } finally {
    rt.dispose();
  }
  return true;
}

function rate(tokens: number, seconds: number): string {
  return seconds > 0 ? (tokens / seconds).toFixed(1) : '-';
}
