/**
 * Greedy generation on the GPU model: each prompt is prefilled in chunks into its own device KV cache,
 * then decoded one token per step with the argmax taken on the device (only the chosen id comes back);
 * with dense attention each step replays a CUDA graph captured once per sequence.
 * Prompts run one after another. Results have the CPU engine's SequenceResult shape, so callers print
 * both backends alike; stop rules are generateTokens' (the stop token is kept as the last id).
 */
import { emptyAttentionCounts, type AttentionCounts } from '../../engine/forward-state.js';
import type { SequenceResult, StopReason, TextGenerateOptions, TextResult } from '../../engine/generate.js';
import type { TextTokenizer } from '../../engine/tokenizer.js';
import { PlanDeviceAttention } from './methods/plan.js';
import type { CudaTransformerModel } from './model.js';

export interface DeviceGenerateOptions {
  maxNewTokens: number;
  stopTokenIds?: Iterable<number>;
  /** Prefill chunk size in tokens (default 4096). */
  chunkSize?: number;
}

const now = (): number => performance.now() / 1000;

/** Dense attention counts: every head of every layer attends all visible pairs (achieved sparsity 0). */
function denseCounts(model: CudaTransformerModel, promptTokens: number, generated: number): AttentionCounts {
  const c = model.config;
  const counts = emptyAttentionCounts(c.numLayers, c.numHeads);
  const visible = (p: number, sliding: boolean): number => (sliding && c.slidingWindow !== null ? Math.min(p + 1, c.slidingWindow) : p + 1);
  for (let l = 0; l < c.numLayers; l++) {
    const sliding = c.layerTypes[l] === 'sliding';
    let prefill = 0, decode = 0;
    for (let p = 0; p < promptTokens; p++) prefill += visible(p, sliding);
    // The last generated token is never fed back.
    for (let p = promptTokens; p < promptTokens + Math.max(0, generated - 1); p++) decode += visible(p, sliding);
    for (let h = 0; h < c.numHeads; h++) {
      const i = l * c.numHeads + h;
      counts.prefill.attended[i] = counts.prefill.dense[i] = prefill;
      counts.decode.attended[i] = counts.decode.dense[i] = decode;
    }
  }
  return counts;
}

export function generateTokensOnDevice(model: CudaTransformerModel, prompts: number[][], options: DeviceGenerateOptions): SequenceResult[] {
  const stops = new Set(options.stopTokenIds ?? []);
  const maxNew = options.maxNewTokens;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new Error(`max new tokens must be a non-negative integer, got ${maxNew}`);
  // A method plan (methods/plan.ts) counts the pairs its methods attended; plain dense attention is counted here.
  const plan = model.attention instanceof PlanDeviceAttention ? model.attention : null;
  return prompts.map((prompt, i) => {
    if (prompt.length === 0) throw new Error(`prompt ${i} is empty`);
    const chunkSize = plan?.requiresWholePrompt ? prompt.length : options.chunkSize ?? 4096;
    plan?.startSequence(prompt.length);
    const seq = model.newSequence(prompt.length + Math.max(1, maxNew));
    const tokenIds: number[] = [];
    let stopReason: StopReason = 'max-new-tokens';
    try {
      const t0 = now();
      const logits = model.prefill(seq, prompt, chunkSize);
      let next = model.argmaxRows(logits)[0];
      model.rt.pool.release(logits);
      const prefillSeconds = now() - t0;
      const t1 = now();
      while (tokenIds.length < maxNew) {
        tokenIds.push(next);
        if (stops.has(next)) {
          stopReason = 'stop-token';
          break;
        }
        if (tokenIds.length >= maxNew) break;
        // A replayed CUDA graph for dense attention, forward + argmax otherwise (model.decodeGreedy).
        next = model.decodeGreedy(seq, next);
      }
      const decodeSeconds = now() - t1;
      return {
        tokenIds, promptTokens: prompt.length, generatedTokens: tokenIds.length, stopReason, prefillSeconds, decodeSeconds,
        counts: plan ? plan.sequenceCounts() : denseCounts(model, prompt.length, tokenIds.length),
      };
    } finally {
      model.rt.synchronize();
      plan?.reset();
      seq.release();
    }
  });
}

/** Tokenise prompts (chat template by default, as generateText), generate on the GPU, decode. */
export function generateTextOnDevice(
  model: CudaTransformerModel, tokenizer: TextTokenizer, prompts: string[], options: Omit<TextGenerateOptions, 'plan'> & { stopTokenIds: Iterable<number> },
): TextResult[] {
  const chat = options.chat ?? tokenizer.hasChatTemplate;
  if (chat && !tokenizer.hasChatTemplate) throw new Error('--chat asked for, but the tokenizer has no chat template');
  const ids = prompts.map((p) => (chat ? tokenizer.encodeUserPrompt(p) : tokenizer.encode(p, { addSpecialTokens: true })));
  return generateTokensOnDevice(model, ids, options).map((r) => ({ ...r, text: tokenizer.decode(r.tokenIds, { skipSpecialTokens: true }) }));
}
