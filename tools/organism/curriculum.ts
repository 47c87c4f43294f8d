/**
 * The training stream is a sequence of chunks; chunk c is one context length L(c) and roughly
 * `chunkTokens` tokens of examples at that length, rotating over the training tasks. The length
 * grows with c (curriculum: short contexts first, where the retrieval pattern is cheap to find),
 * then stays spread over [minLength, maxLength] so short lengths are not forgotten.
 * Everything is a pure function of (c, plan): any worker can make any chunk, and a rerun makes
 * the same bytes (given the same tokenizer).
 */
import { SeededRandom } from '../../src/tasks/index.js';
import { TRAINING_SEED_BASE, TRAINING_TASKS, type ReplyStyle, type TrainingTask } from './training-format.js';

export interface CurriculumPlan {
  /** Shortest context in tokens (whole templated input). */
  minLength: number;
  /** Longest context once the curriculum has ramped up. */
  maxLength: number;
  /** Longest context of chunk 0; the upper bound grows linearly from here to maxLength. */
  startMaxLength: number;
  /** Chunks over which the upper bound ramps from startMaxLength to maxLength. */
  rampChunks: number;
  /** Approximate tokens per chunk (examples × length). */
  chunkTokens: number;
  /** Lengths are multiples of this. */
  lengthStep: number;
  /** Seeds of chunk c start at seedBase + c·SEEDS_PER_CHUNK (≥ 10^6: disjoint from evaluation's 43 + i). */
  seedBase: number;
  /**
   * Chunk where the length ramp (and the difficulty ramp) start: a run resumed from a checkpoint
   * trains on fresh chunks from here and gets the short, easy start again.
   */
  rampStart: number;
  /**
   * Chunks over which task difficulty grows from easy instances (one NIAH query with short codes,
   * two one-hop VT chains, few retrieval questions) to the tasks' defaults, which evaluation uses.
   * 0: defaults from the start (the shipped run).
   */
  easyChunks: number;
  /** Queries of the easiest NIAH instance (they move to the default 4 with difficulty; run 3: 1). */
  easyNiahQueries: number;
  /** Questions of the easiest story-retrieval instance (to the default 16; run 3: 4). */
  easyStoryQueries: number;
  /**
   * Relative share of each task in a chunk's rotation (whole numbers ≥ 1; all 1: the six tasks in
   * turn, as runs 1–3). A weight of 2 puts the task twice in each round of the rotation.
   */
  taskWeights: Record<TrainingTask, number>;
  /**
   * Tasks that follow the difficulty ramp; the others get their defaults throughout (run 6: a task
   * already solved at full difficulty, NIAH, is not sent back to easy instances). Absent: all tasks.
   */
  easyTasks?: readonly TrainingTask[];
  /** How answers are written (training-format.ts); absent: as the tasks store them. */
  replyStyle?: ReplyStyle;
  /**
   * Run 8: share of VT examples whose variables are renamed to share first letters and prefixes
   * within the instance (vt-confusable.ts; training only). 0 or absent: as generated.
   */
  vtConfusableShare?: number;
  /**
   * Run 11b: follow-up turns after each VT example's reply, each asking another chain of the same
   * context (vt-follow-ups.ts; training only). 0 or absent: none.
   */
  vtFollowUps?: number;
  /**
   * Run 8: share of chunks drawn at a long length, uniform in [longMinLength, longMaxLength] (beyond
   * maxLength: positions evaluation reaches at 16K), independent of the length ramp. 0 or absent: none.
   */
  longShare?: number;
  longMinLength?: number;
  longMaxLength?: number;
}

export const SEEDS_PER_CHUNK = 1000;

export const DEFAULT_PLAN: CurriculumPlan = {
  minLength: 1024, // below ~1K no task's prompt fits with the organism's 4K-token vocabulary
  maxLength: 8192,
  startMaxLength: 2048,
  rampChunks: 200,
  chunkTokens: 131072,
  lengthStep: 64,
  seedBase: TRAINING_SEED_BASE,
  rampStart: 0,
  easyChunks: 0,
  easyNiahQueries: 1,
  easyStoryQueries: 4,
  taskWeights: { niah: 1, vt: 1, cwe: 1, story_retrieval: 1, story_multihop: 1, story_filtering: 1 },
};

/**
 * The order tasks take in a chunk: round r lists, in TRAINING_TASKS order, every task whose weight
 * exceeds r. Equal weights give TRAINING_TASKS itself.
 */
export function taskRotation(weights: Record<TrainingTask, number>): TrainingTask[] {
  const rounds = Math.max(...TRAINING_TASKS.map((t) => weights[t]));
  const rotation: TrainingTask[] = [];
  for (let r = 0; r < rounds; r++) for (const t of TRAINING_TASKS) if (weights[t] > r) rotation.push(t);
  return rotation;
}

/** The easiest instance's query counts (difficulty 0) of the tasks that have one. */
export interface EasyQueries {
  niah: number;
  storyRetrieval: number;
}

export function easyQueriesOf(plan: CurriculumPlan): EasyQueries {
  return { niah: plan.easyNiahQueries, storyRetrieval: plan.easyStoryQueries };
}

export interface ChunkSpec {
  index: number;
  /** Target n of every example in the chunk. */
  length: number;
  /** How many examples to make. */
  examples: number;
  /** Task of example 0; later examples rotate through TRAINING_TASKS from here. */
  firstTask: number;
  /** Example j of the chunk uses task seed `seed` with example index j (its generator: seed + j). */
  seed: number;
  /** 0 = easiest instances, 1 = the tasks' default (evaluation) parameters. */
  difficulty: number;
  /** Task order of the chunk's examples (taskRotation of the plan's weights); absent: TRAINING_TASKS. */
  rotation?: readonly TrainingTask[];
  /** Query counts of the easiest instances; absent: run 3's (1 NIAH query, 4 story questions). */
  easy?: EasyQueries;
  /** Tasks the difficulty applies to; absent: all (the others are generated at their defaults). */
  easyTasks?: readonly TrainingTask[];
  /** How answers are written; absent: as the tasks store them. */
  replyStyle?: ReplyStyle;
  /** Share of the chunk's VT examples renamed to confusable names (vt-confusable.ts); absent: none. */
  vtConfusableShare?: number;
  /** Follow-up turns after each VT reply (vt-follow-ups.ts); absent: none. */
  vtFollowUps?: number;
  /** Whether the chunk was drawn at a long length (CurriculumPlan.longShare). */
  long?: boolean;
}

export function validatePlan(plan: CurriculumPlan): void {
  const problems: string[] = [];
  if (!(plan.minLength > 64 && plan.minLength <= plan.startMaxLength && plan.startMaxLength <= plan.maxLength)) {
    problems.push(`need 64 < minLength ≤ startMaxLength ≤ maxLength, got ${plan.minLength}, ${plan.startMaxLength}, ${plan.maxLength}`);
  }
  if (!(plan.rampChunks >= 1)) problems.push(`rampChunks must be ≥ 1, got ${plan.rampChunks}`);
  if (!(plan.chunkTokens >= plan.maxLength)) problems.push(`chunkTokens (${plan.chunkTokens}) must hold at least one maxLength example`);
  if (!(plan.lengthStep >= 1)) problems.push(`lengthStep must be ≥ 1`);
  if (!(Number.isInteger(plan.rampStart) && plan.rampStart >= 0)) problems.push(`rampStart must be a non-negative integer, got ${plan.rampStart}`);
  if (!(Number.isInteger(plan.easyChunks) && plan.easyChunks >= 0)) problems.push(`easyChunks must be a non-negative integer, got ${plan.easyChunks}`);
  if (!(Number.isInteger(plan.easyNiahQueries) && plan.easyNiahQueries >= 1)) problems.push(`easyNiahQueries must be an integer ≥ 1, got ${plan.easyNiahQueries}`);
  if (!(Number.isInteger(plan.easyStoryQueries) && plan.easyStoryQueries >= 1)) problems.push(`easyStoryQueries must be an integer ≥ 1, got ${plan.easyStoryQueries}`);
  for (const t of TRAINING_TASKS) {
    const w = plan.taskWeights[t];
    if (!(Number.isInteger(w) && w >= 1 && w <= 8)) problems.push(`taskWeights.${t} must be an integer in [1, 8], got ${w}`);
  }
  const share = (v: number | undefined) => v === undefined || (v >= 0 && v <= 1);
  if (!share(plan.vtConfusableShare)) problems.push(`vtConfusableShare must be in [0, 1], got ${plan.vtConfusableShare}`);
  const followUps = plan.vtFollowUps ?? 0;
  if (!(Number.isInteger(followUps) && followUps >= 0 && followUps <= 7)) problems.push(`vtFollowUps must be an integer in [0, 7] (8 chains, one asked), got ${plan.vtFollowUps}`);
  if (!share(plan.longShare)) problems.push(`longShare must be in [0, 1], got ${plan.longShare}`);
  if ((plan.longShare ?? 0) > 0) {
    const lo = plan.longMinLength ?? NaN;
    const hi = plan.longMaxLength ?? NaN;
    if (!(lo >= plan.minLength && lo <= hi)) problems.push(`long chunks need minLength ≤ longMinLength ≤ longMaxLength, got ${lo}, ${hi}`);
    if (!(plan.chunkTokens >= hi)) problems.push(`chunkTokens (${plan.chunkTokens}) must hold at least one longMaxLength example`);
  }
  if (!(plan.seedBase >= TRAINING_SEED_BASE)) problems.push(`seedBase must be ≥ ${TRAINING_SEED_BASE} (evaluation seeds are 43 + i)`);
  if (problems.length) throw new Error(`curriculum plan: ${problems.join('; ')}`);
}

export function chunkSpec(index: number, plan: CurriculumPlan = DEFAULT_PLAN): ChunkSpec {
  if (!Number.isInteger(index) || index < 0) throw new Error(`chunk index must be a non-negative integer, got ${index}`);
  const rng = new SeededRandom(plan.seedBase - 1 - index); // below seedBase: never an example seed
  const rotation = taskRotation(plan.taskWeights);
  const progress = Math.min(1, Math.max(0, index - plan.rampStart) / plan.rampChunks);
  const upper = plan.startMaxLength + (plan.maxLength - plan.startMaxLength) * progress;
  // sqrt leans towards the upper bound: long contexts are the point, short ones a refresher.
  const raw = plan.minLength + (upper - plan.minLength) * Math.sqrt(rng.float());
  let length = Math.max(plan.minLength, Math.min(plan.maxLength, Math.round(raw / plan.lengthStep) * plan.lengthStep));
  const firstTask = rng.int(rotation.length);
  // Drawn after the draws above, and only when asked: a plan without long chunks makes the same specs
  // as before the option existed.
  const long = (plan.longShare ?? 0) > 0 && rng.float() < (plan.longShare as number);
  if (long) {
    const lo = plan.longMinLength as number;
    const hi = plan.longMaxLength as number;
    const steps = Math.floor((hi - lo) / plan.lengthStep);
    length = lo + plan.lengthStep * rng.int(steps + 1);
  }
  return {
    index,
    length,
    examples: Math.max(1, Math.floor(plan.chunkTokens / length)),
    firstTask,
    seed: plan.seedBase + index * SEEDS_PER_CHUNK,
    difficulty: plan.easyChunks === 0 ? 1 : Math.min(1, Math.max(0, index - plan.rampStart) / plan.easyChunks),
    rotation,
    easy: easyQueriesOf(plan),
    ...(plan.easyTasks ? { easyTasks: plan.easyTasks } : {}),
    ...(plan.replyStyle ? { replyStyle: plan.replyStyle } : {}),
    ...(plan.vtConfusableShare ? { vtConfusableShare: plan.vtConfusableShare } : {}),
    ...(plan.vtFollowUps ? { vtFollowUps: plan.vtFollowUps } : {}),
    ...(long ? { long } : {}),
  };
}

/**
 * Generator parameters of `task` at a difficulty in [0, 1]: at 1 none (the task's defaults, which the
 * evaluation uses); below 1 fewer and shorter needles, so a small model first meets a retrieval problem
 * it can solve with one copy, then the same problem with more distractors. Only parameters that keep
 * the reply format unchanged are eased (CWE keeps its ten words, filtering its three chapters).
 */
export function taskParams(
  task: TrainingTask,
  difficulty: number,
  easy: EasyQueries = easyQueriesOf(DEFAULT_PLAN),
): Record<string, number> | undefined {
  if (!(difficulty >= 0 && difficulty <= 1)) throw new Error(`difficulty must be in [0, 1], got ${difficulty}`);
  if (difficulty === 1) return undefined;
  const between = (easiest: number, full: number) => Math.round(easiest + (full - easiest) * difficulty);
  switch (task) {
    case 'niah':
      return { numQueries: between(easy.niah, 4), groups: between(2, 4), groupLength: between(4, 8) };
    case 'vt':
      return { numChains: between(2, 8), numHops: between(1, 4) };
    case 'story_retrieval':
      return { numQueries: between(easy.storyRetrieval, 16) };
    default:
      return undefined;
  }
}

/** The difficulty example generation uses for `task` in this chunk (1 for tasks outside easyTasks). */
export function difficultyOf(spec: ChunkSpec, task: TrainingTask): number {
  return spec.easyTasks === undefined || spec.easyTasks.includes(task) ? spec.difficulty : 1;
}

/** Task of example j in a chunk (before any fallback for tasks that cannot fill the length). */
export function taskOf(spec: ChunkSpec, j: number): TrainingTask {
  const rotation = spec.rotation ?? TRAINING_TASKS;
  return rotation[(spec.firstTask + j) % rotation.length] as TrainingTask;
}
