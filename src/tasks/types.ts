/**
 * The task contract the experiment runner codes against (see index.ts for the overview).
 */
import type { TextTokenizer } from '../engine/tokenizer.js';

export type TaskFamily = 'ruler' | 'story' | 'qa';
/** The per-example metric the task's scorer returns and the aggregate averages. */
export type TaskMetric = 'accuracy' | 'iou' | 'f1';

export interface GenerateOptions<P = Record<string, unknown>> {
  tokenizer: TextTokenizer;
  /** n: the whole model input in tokens, chat template included. */
  length: number;
  /** How many examples (indices firstIndex … firstIndex + count − 1). */
  count: number;
  /** Configuration seed; example i draws from its own generator seeded with seed + i. Default 43. */
  seed?: number;
  /** First example index (default 0); example i is the same whatever the count or first index. */
  firstIndex?: number;
  /** Folder with squad.json, quality.jsonl, toeflqa.jsonl (QA tasks only); default data/qa of this repo. */
  dataDir?: string;
  /** Task parameters overriding the defaults (see each task's `defaults`). */
  params?: Partial<P>;
}

export interface TaskExample<G = unknown> {
  /** `${task}/n${length}/s${seed}/${index}`: stable across runs. */
  id: string;
  task: string;
  index: number;
  /** The configuration seed (the example's own generator used seed + index). */
  seed: number;
  /** Target n. */
  length: number;
  /** The user message text (no chat template). */
  prompt: string;
  /** Token ids the model sees: chat template applied, generation prompt added. */
  inputIds: number[];
  /** inputIds.length, ≤ length and ≥ 0.9·length. */
  inputLength: number;
  /** Tokens of the prompt without the template (≤ length − 64). */
  rawLength: number;
  /** Everything the scorer needs; plain JSON. */
  gold: G;
  /** Tokens of the reference answer text (≤ 1024). */
  goldLength: number;
  /** Construction facts (counts, chosen chapters, …); plain JSON, not needed for scoring. */
  meta: Record<string, unknown>;
}

export interface ScoreResult {
  /** The example's metric in [0, 1]; null when the scorer drops the example from the mean. */
  score: number | null;
  details: Record<string, unknown>;
}

export interface Task<P = Record<string, unknown>, G = unknown> {
  name: string;
  family: TaskFamily;
  metric: TaskMetric;
  description: string;
  defaults: Readonly<P>;
  /**
   * Smallest n (multiple of 256) at which every checked seed generated within bounds for the reference
   * tokenizers (Llama 3.1 and Qwen 3); `measureSmallestLength` gives the figure for another tokenizer.
   */
  smallestLength: number;
  generate(options: GenerateOptions<P>): TaskExample<G>[];
  /** Score one model output (decoded without special tokens) against the example's gold. */
  score(example: Pick<TaskExample<G>, 'gold'>, output: string): ScoreResult;
}
