/**
 * Greedy generation over one or more prompts. Each prompt is prefilled on its own (in chunks), then
 * all sequences still running decode together: one batched forward per step, so the linear layers read
 * their weights once per step for the whole batch; each sequence keeps its own KV cache.
 *
 * A sequence stops at a stop token (kept as its last generated id, as transformers does) or after
 * `maxNewTokens` tokens.
 */
import type { AttentionPlan } from './attention.js';
import type { AttentionCounts, SequenceState } from './forward-state.js';
import type { TransformerModel } from './model.js';
import type { TextTokenizer } from './tokenizer.js';
import { densePlan } from '../methods/dense.js';
import { argmax } from '../backends/cpu/ops.js';

export interface GenerateOptions {
  /** Attention methods (default: dense in both phases). */
  plan?: AttentionPlan;
  maxNewTokens: number;
  /** Generation ends when one of these ids is produced. */
  stopTokenIds?: Iterable<number>;
  /** Prefill chunk size in tokens (default 512). */
  chunkSize?: number;
}

export type StopReason = 'stop-token' | 'max-new-tokens';

export interface SequenceResult {
  /** Generated ids (the stop token, when hit, is the last one). */
  tokenIds: number[];
  promptTokens: number;
  generatedTokens: number;
  stopReason: StopReason;
  prefillSeconds: number;
  /** Wall time of the batched decode steps this sequence took part in. */
  decodeSeconds: number;
  /** Attended / dense pair counts per phase, layer and head (achieved sparsity). */
  counts: AttentionCounts;
}

const now = (): number => performance.now() / 1000;

export function generateTokens(model: TransformerModel, prompts: number[][], options: GenerateOptions): SequenceResult[] {
  const plan = options.plan ?? densePlan();
  checkMaxNewTokens(options.maxNewTokens);
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`prompt ${i} is empty`);
  });
  const prefilled = prompts.map((prompt): PrefilledSequence => {
    const state = model.newSequence(plan);
    const t0 = now();
    const lastLogits = model.prefill(state, prompt, plan, options.chunkSize ?? 512);
    return { state, lastLogits, promptTokens: prompt.length, prefillSeconds: now() - t0 };
  });
  return continueGeneration(model, prefilled, { ...options, plan });
}

/** A sequence whose prompt is in its cache (afterPrefill hooks done), ready to decode. */
export interface PrefilledSequence {
  state: SequenceState;
  /** [V] logits of the last prompt token. */
  lastLogits: Float32Array;
  promptTokens: number;
  /** Reported as the result's prefillSeconds. */
  prefillSeconds: number;
}

function checkMaxNewTokens(maxNew: number): void {
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new Error(`max new tokens must be a non-negative integer, got ${maxNew}`);
}

/**
 * Greedy decoding of prefilled sequences under `options.plan` (its decode method must be the one
 * whose afterPrefill hook ran on them): the second half of generateTokens, also used to decode
 * several copies of one shared dense prefill (SequenceState.fork) under different decode methods.
 */
export function continueGeneration(model: TransformerModel, prefilled: PrefilledSequence[], options: GenerateOptions): SequenceResult[] {
  const plan = options.plan ?? densePlan();
  const stops = new Set(options.stopTokenIds ?? []);
  const maxNew = options.maxNewTokens;
  checkMaxNewTokens(maxNew);
  const seqs = prefilled.map((p) => {
    if (!p.state.prefillDone) throw new Error('continueGeneration: the sequence has not finished its prefill');
    return {
      state: p.state,
      next: argmax(p.lastLogits),
      result: {
        tokenIds: [] as number[],
        promptTokens: p.promptTokens,
        generatedTokens: 0,
        stopReason: 'max-new-tokens' as StopReason,
        prefillSeconds: p.prefillSeconds,
        decodeSeconds: 0,
        counts: p.state.counts,
      },
      running: maxNew > 0,
    };
  });
  // Take the pending token of each running sequence; stop it if that token ends it.
  const accept = (): void => {
    for (const s of seqs) {
      if (!s.running) continue;
      s.result.tokenIds.push(s.next);
      if (stops.has(s.next)) {
        s.result.stopReason = 'stop-token';
        s.running = false;
      } else if (s.result.tokenIds.length >= maxNew) {
        s.running = false;
      }
    }
  };

  accept();
  for (;;) {
    const active = seqs.filter((s) => s.running);
    if (active.length === 0) break;
    const t0 = now();
    const logits = model.decodeStep(active.map((s) => s.state), active.map((s) => s.next), plan);
    const dt = now() - t0;
    active.forEach((s, i) => {
      s.next = argmax(logits[i]);
      s.result.decodeSeconds += dt;
    });
    accept();
  }
  for (const s of seqs) s.result.generatedTokens = s.result.tokenIds.length;
  return seqs.map((s) => s.result);
}

export interface TextGenerateOptions extends GenerateOptions {
  /** Apply the tokenizer's chat template (default: when it has one). */
  chat?: boolean;
}

export interface TextResult extends SequenceResult {
  /** Generated text, decoded without special tokens. */
  text: string;
}

/**
 * Stop ids of a checkpoint: the tokenizer's EOS, the generation_config eos ids and config.json's.
 */
export function collectStopTokenIds(tokenizer: TextTokenizer, ...idLists: (readonly number[] | undefined)[]): number[] {
  const ids = new Set<number>(tokenizer.stopTokenIds);
  for (const list of idLists) for (const id of list ?? []) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}

/** Tokenise prompts (chat template by default), generate, decode. */
export function generateText(
  model: TransformerModel, tokenizer: TextTokenizer, prompts: string[], options: TextGenerateOptions,
): TextResult[] {
  const chat = options.chat ?? tokenizer.hasChatTemplate;
  if (chat && !tokenizer.hasChatTemplate) throw new Error('--chat asked for, but the tokenizer has no chat template');
  const ids = prompts.map((p) => (chat ? tokenizer.encodeUserPrompt(p) : tokenizer.encode(p, { addSpecialTokens: true })));
  const stopTokenIds = options.stopTokenIds ?? collectStopTokenIds(tokenizer, model.config.eosTokenIds);
  return generateTokens(model, ids, { ...options, stopTokenIds }).map((r) => ({
    ...r,
    text: tokenizer.decode(r.tokenIds, { skipSpecialTokens: true }),
  }));
}
