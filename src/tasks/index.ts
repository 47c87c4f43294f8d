/**
 * The long-context task suite: the original study's nine tasks, generated at an exact token length
 * for any tokenizer with a chat template, and scored exactly as the original scores them.
 *
 * Public API (stable; the experiment runner codes against it):
 *
 *   getTask(name) → Task            one of listTasks(); also accepts the original's names
 *                                   (ruler_niah, ruler_vt, ruler_cwe, qa_toeflqa)
 *   listTasks() → Task[]            niah, vt, cwe, story_retrieval, story_multihop, story_filtering,
 *                                   qa_squad, qa_quality, qa_toefl
 *   task.generate({ tokenizer, length, count, seed?, firstIndex?, dataDir?, params? })
 *       → TaskExample[]             example i (firstIndex ≤ i < firstIndex + count) draws only from its
 *                                   own generator seeded with seed + i (default seed 43), so it does
 *                                   not depend on count; a task-level generator seeded with seed
 *                                   orders the CWE words and the QA questions.
 *       Each example: { id, task, index, seed, length, prompt (user message text), inputIds (chat
 *       template applied, generation prompt added), inputLength, rawLength, gold (plain JSON, all the
 *       scorer needs), goldLength, meta }. Bounds, checked on real token counts: rawLength ≤ n − 64,
 *       inputLength ≤ n, inputLength ≥ 0.9·n, every gold answer ≤ 1024 tokens. An example that cannot
 *       meet them throws TaskExampleError (fields task, length, seed, index, reason); the runner can
 *       record it and move on. Bad options (unknown parameter, bad length) throw a plain Error.
 *   task.score(example, outputText) → { score: number | null, details }
 *                                   outputText: the generation decoded without special tokens;
 *                                   null = dropped from the mean (multi-hop, filtering).
 *   aggregate(scores) → { mean, variance (ddof 1), n, dropped, scores }
 *   measureSmallestLength(task, tokenizer, …) → the smallest usable n for that tokenizer.
 *
 * Generation settings the runner must use (SPEC §3): greedy, at most 1024 new tokens, decoded
 * without special tokens.
 */
import type { TextTokenizer } from '../engine/tokenizer.js';
import { TEMPLATE_RESERVE, TaskExampleError } from './length.js';
import { niahTask } from './ruler/niah.js';
import { vtTask } from './ruler/vt.js';
import { cweTask } from './ruler/cwe.js';
import { retrievalTask } from './story/retrieval.js';
import { multihopTask } from './story/multihop.js';
import { filteringTask } from './story/filtering.js';
import { qualityTask, squadTask, toeflTask } from './qa/task.js';
import type { Task } from './types.js';

export type { GenerateOptions, ScoreResult, Task, TaskExample, TaskFamily, TaskMetric } from './types.js';
export { aggregate, type Aggregate } from './aggregate.js';
export { DEFAULT_SEED, MAX_GOLD_TOKENS, MIN_FILL_FRACTION, TEMPLATE_RESERVE, TaskExampleError } from './length.js';
export { SeededRandom } from './random.js';

// The registry stores tasks with their own parameter and gold types erased to the common shape.
type AnyTask = Task<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const TASKS: readonly AnyTask[] = [niahTask, vtTask, cweTask, retrievalTask, multihopTask, filteringTask, squadTask, qualityTask, toeflTask];

/** The original's task names, accepted as aliases. */
const ALIASES: Record<string, string> = {
  ruler_niah: 'niah',
  ruler_vt: 'vt',
  ruler_cwe: 'cwe',
  qa_toeflqa: 'qa_toefl',
};

export function listTasks(): readonly AnyTask[] {
  return TASKS;
}

export function getTask(name: string): AnyTask {
  const resolved = ALIASES[name] ?? name;
  const task = TASKS.find((t) => t.name === resolved);
  if (!task) throw new Error(`unknown task "${name}" (known: ${TASKS.map((t) => t.name).join(', ')})`);
  return task;
}

/**
 * The smallest n (a multiple of `step`) from which on generation works for `tokenizer`: examples
 * 0 … examples − 1 all generate within the bounds at n and at the next `confirmSteps` multiples
 * (fill bounds are not monotonic: a task can fit at n and miss 0.9·n at n + step). Scans upwards
 * from `step`; null when nothing up to `maxLength` qualifies.
 */
export function measureSmallestLength(
  task: AnyTask,
  tokenizer: TextTokenizer,
  options: {
    examples?: number;
    seed?: number;
    step?: number;
    maxLength?: number;
    confirmSteps?: number;
    dataDir?: string;
    params?: Record<string, unknown>;
  } = {},
): number | null {
  const step = options.step ?? 256;
  const maxLength = options.maxLength ?? 16384;
  const confirmSteps = options.confirmSteps ?? 3;
  const works = (n: number): boolean => {
    try {
      task.generate({ tokenizer, length: n, count: options.examples ?? 5, seed: options.seed, dataDir: options.dataDir, params: options.params });
      return true;
    } catch (e) {
      if (e instanceof TaskExampleError) return false;
      throw e;
    }
  };
  let candidate: number | null = null;
  for (let n = step; n <= maxLength; n += step) {
    if (n <= TEMPLATE_RESERVE) continue;
    if (!works(n)) {
      candidate = null;
      continue;
    }
    if (candidate === null) candidate = n;
    if ((n - candidate) / step >= confirmSteps) return candidate;
  }
  return candidate;
}
