/**
 * Training data for the model organism, made by the project's own task generators.
 *
 *   node generate-data.js --tokenizer DIR --out DIR --chunks N [--worker w --workers W] [--text]
 *
 * Worker w of W writes chunks c = w, w + W, … < N (see curriculum.ts) as OUT/chunk-000123.jsonl,
 * renamed into place only when complete, so a trainer reading the folder never sees half a chunk.
 * One line per example:
 *   {"task", "length", "seed", "index", "prompt_tokens", "answer_start", "answer_end", "ids"}
 * ids = the templated prompt (chat template, generation prompt) + the target reply + end-of-turn id;
 * only ids[prompt_tokens:] are the reply, and ids[answer_start:answer_end] the gold answer in it
 * (before it: the task's fixed explanation frame; after it: the closing tag and end of turn); a VT
 * example renamed to confusable names (--vt-confusable, training only) also has "vt_names": "confusable".
 * With --vt-follow-ups K (training only) a VT example's ids go on after its reply with K user turns
 * asking other chains of the same context, each answered in the same format (vt-follow-ups.ts); the
 * line then also has "reply_end" (the end of the first reply, after its end-of-turn token) and
 * "follow_ups": [[reply_start, answer_start, reply_end], …] for the later replies.
 * With --text the line is {"task", "length", "seed", "index",
 * "prompt", "reply"} instead: the user message and the reply as plain text, for training the
 * tokenizer (then DIR may hold a provisional tokenizer, used only to size the contexts).
 * An example whose task cannot fill the chunk's length is replaced by the next task in rotation.
 */
import { mkdirSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { getTask, TaskExampleError, type TaskExample } from '../../src/tasks/index.js';
import { chunkSpec, DEFAULT_PLAN, difficultyOf, taskOf, taskParams, validatePlan, type ChunkSpec, type CurriculumPlan } from './curriculum.js';
import { TRAINING_TASKS, isTrainingTask, replyParts, targetText, type ReplyParts, type ReplyStyle, type TrainingTask } from './training-format.js';
import { renameDraw, withConfusableNames } from './vt-confusable.js';
import { followUpChains, followUpTurnText } from './vt-follow-ups.js';
import { vtQuestion, type VtGold } from '../../src/tasks/ruler/vt.js';

export interface ChunkResult {
  lines: string[];
  /** Per task: examples made, and fallbacks (the task could not fill this length). */
  made: Record<string, number>;
  fallbacks: Record<string, number>;
  tokens: number;
}

/** The end-of-turn token that closes every reply (the tokenizer's EOS). */
export function endOfTurnId(tokenizer: TextTokenizer): number {
  const eos = tokenizer.eosToken;
  const id = eos === undefined ? undefined : tokenizer.tokenToId(eos);
  if (id === undefined) throw new Error(`tokenizer has no single-token eos_token (got ${JSON.stringify(eos)})`);
  return id;
}

/**
 * A task that has missed this many times, and more than twice as often as it fitted, is skipped for
 * the rest of the chunk: each miss costs a whole generation, and misses at one length are systematic.
 */
const GIVE_UP_AFTER = 2;

/**
 * A VT example renamed to confusable names (vt-confusable.ts) when its own draw falls within `share`;
 * as generated otherwise, or when the renamed prompt cannot fit the length.
 */
export function confusableVariant(tokenizer: TextTokenizer, example: TaskExample<VtGold>, share: number): TaskExample {
  const rng = renameDraw(example.seed, example.index, share);
  return (rng && withConfusableNames(example, tokenizer, rng)?.example) || example;
}

function makeExample(tokenizer: TextTokenizer, spec: ChunkSpec, j: number, result: ChunkResult): TaskExample | null {
  // One whole round of the rotation: every task gets its chance before the example is given up.
  const rounds = spec.rotation?.length ?? TRAINING_TASKS.length;
  for (let k = 0; k < rounds; k++) {
    const task = taskOf(spec, j + k);
    const misfits = result.fallbacks[task] ?? 0;
    if (misfits >= GIVE_UP_AFTER && misfits > 2 * (result.made[task] ?? 0)) continue;
    try {
      const params = taskParams(task, difficultyOf(spec, task), spec.easy);
      const [example] = getTask(task).generate({ tokenizer, length: spec.length, count: 1, seed: spec.seed, firstIndex: j, ...(params ? { params } : {}) });
      return task === 'vt' && spec.vtConfusableShare ? confusableVariant(tokenizer, example as TaskExample<VtGold>, spec.vtConfusableShare) : (example as TaskExample);
    } catch (e) {
      if (!(e instanceof TaskExampleError)) throw e;
      result.fallbacks[task] = (result.fallbacks[task] ?? 0) + 1;
    }
  }
  return null;
}

/**
 * Appends a reply to `ids` part by part (head, answer, tail, end of turn), so the answer's token span is
 * exact; returns that span.
 */
function appendReply(tokenizer: TextTokenizer, parts: ReplyParts, end: number, ids: number[]): { answerStart: number; answerEnd: number } {
  ids.push(...tokenizer.encode(parts.head));
  const answerStart = ids.length;
  ids.push(...tokenizer.encode(parts.answer));
  const answerEnd = ids.length;
  ids.push(...tokenizer.encode(parts.tail), end);
  return { answerStart, answerEnd };
}

/**
 * Appends the follow-up turns of a VT example to `ids` (which end with its first reply's end-of-turn
 * token `end`) and returns the spans the trainer needs. The turn text is checked once against the
 * tokenizer's own chat template, so a template with another layout is refused rather than mimicked.
 */
function appendFollowUps(tokenizer: TextTokenizer, example: TaskExample, spec: ChunkSpec, end: number, ids: number[]): { reply_end: number; follow_ups: number[][] } {
  const endToken = tokenizer.eosToken as string;
  checkFollowUpTemplate(tokenizer, endToken);
  const replyEnd = ids.length;
  const spans: number[][] = [];
  for (const chain of followUpChains(example, spec.vtFollowUps ?? 0)) {
    ids.push(...tokenizer.encode(followUpTurnText(vtQuestion(chain.value), endToken)));
    const gold = { variables: chain.variables, value: chain.value, text: chain.variables.join(' ') };
    const start = ids.length;
    const { answerStart } = appendReply(tokenizer, replyParts({ task: 'vt', gold, prompt: example.prompt }, spec.replyStyle), end, ids);
    spans.push([start, answerStart, ids.length]);
  }
  return { reply_end: replyEnd, follow_ups: spans };
}

const checkedTemplates = new WeakSet<TextTokenizer>();

function checkFollowUpTemplate(tokenizer: TextTokenizer, endToken: string): void {
  if (checkedTemplates.has(tokenizer)) return;
  const first = tokenizer.renderChat([{ role: 'user', content: 'U' }, { role: 'assistant', content: 'A' }], false);
  const both = tokenizer.renderChat([{ role: 'user', content: 'U' }, { role: 'assistant', content: 'A' }, { role: 'user', content: 'Q' }], true);
  const expected = `${first.slice(0, first.lastIndexOf('A') + 1)}${endToken}${followUpTurnText('Q', endToken)}`;
  if (both !== expected) {
    throw new Error(`--vt-follow-ups: the tokenizer's chat template lays out turns unlike <|role|>\\n…${endToken}\\n (got ${JSON.stringify(both)})`);
  }
  checkedTemplates.add(tokenizer);
}

export function buildChunk(tokenizer: TextTokenizer, spec: ChunkSpec, mode: 'ids' | 'text'): ChunkResult {
  const result: ChunkResult = { lines: [], made: {}, fallbacks: {}, tokens: 0 };
  const end = mode === 'ids' ? endOfTurnId(tokenizer) : -1;
  for (let j = 0; j < spec.examples; j++) {
    const example = makeExample(tokenizer, spec, j, result);
    if (example === null) continue;
    result.made[example.task] = (result.made[example.task] ?? 0) + 1;
    const reply = targetText(example, spec.replyStyle);
    // vt_names marks a renamed VT example (training only), so a reader of the chunk can rebuild it
    const base = { task: example.task, length: spec.length, seed: example.seed, index: example.index, ...(example.meta.confusableNames ? { vt_names: 'confusable' } : {}) };
    if (mode === 'text') {
      // Plain text without any chat template: the tokenizer trained on it brings its own specials.
      result.lines.push(JSON.stringify({ ...base, prompt: example.prompt, reply }));
      result.tokens += example.inputLength;
    } else {
      // Part by part (the same ids as the whole reply for this tokenizer: tested), so the answer's
      // token span is exact.
      const ids = [...example.inputIds];
      const { answerStart, answerEnd } = appendReply(tokenizer, replyParts(example, spec.replyStyle), end, ids);
      const followUps = example.task === 'vt' && spec.vtFollowUps ? appendFollowUps(tokenizer, example, spec, end, ids) : null;
      result.lines.push(JSON.stringify({ ...base, prompt_tokens: example.inputLength, answer_start: answerStart, answer_end: answerEnd, ...(followUps ?? {}), ids }));
      result.tokens += ids.length;
    }
  }
  return result;
}

function intArg(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}

/** `niah=2,vt=2` → every training task's weight, 1 where not named. */
export function parseTaskWeights(value: string | undefined): Record<TrainingTask, number> {
  const weights = { ...DEFAULT_PLAN.taskWeights };
  if (value === undefined || value === '') return weights;
  for (const part of value.split(',')) {
    const [name, w] = part.split('=');
    if (name === undefined || !isTrainingTask(name)) throw new Error(`--task-weights: "${part}" names no training task (${TRAINING_TASKS.join(', ')})`);
    weights[name] = intArg(w, 'task-weights', 1);
  }
  return weights;
}

/** `vt,story_retrieval` → those training tasks (a name that is none is an error). */
export function parseTaskList(value: string, flag: string): TrainingTask[] {
  return value.split(',').map((name) => {
    if (!isTrainingTask(name)) throw new Error(`--${flag}: "${name}" names no training task (${TRAINING_TASKS.join(', ')})`);
    return name;
  });
}

/** A share in [0, 1] given on the command line. */
export function shareArg(value: string, name: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0 && n <= 1)) throw new Error(`--${name} must be a number in [0, 1], got "${value}"`);
  return n;
}

/** The reply-style flags; absent when none is set (the chunks then match runs 1–6 byte for byte). */
function replyStyleOf(values: { 'vt-var-prefix'?: boolean; 'worked-lookups'?: boolean; 'worked-multihop'?: boolean }): { replyStyle?: ReplyStyle } {
  const style: ReplyStyle = {
    ...(values['vt-var-prefix'] ? { vtVarPrefix: true } : {}),
    ...(values['worked-lookups'] ? { workedLookups: true } : {}),
    ...(values['worked-multihop'] ? { workedMultihop: true } : {}),
  };
  return Object.keys(style).length ? { replyStyle: style } : {};
}

function main(): void {
  const { values } = parseArgs({
    options: {
      tokenizer: { type: 'string' },
      out: { type: 'string' },
      chunks: { type: 'string' },
      'first-chunk': { type: 'string' },
      worker: { type: 'string' },
      workers: { type: 'string' },
      text: { type: 'boolean', default: false },
      'min-length': { type: 'string' },
      'max-length': { type: 'string' },
      'start-max-length': { type: 'string' },
      'ramp-chunks': { type: 'string' },
      'chunk-tokens': { type: 'string' },
      'seed-base': { type: 'string' },
      'ramp-start': { type: 'string' },
      'easy-chunks': { type: 'string' },
      'easy-niah-queries': { type: 'string' },
      'easy-story-queries': { type: 'string' },
      'task-weights': { type: 'string' },
      'easy-tasks': { type: 'string' },
      'vt-var-prefix': { type: 'boolean', default: false },
      'worked-lookups': { type: 'boolean', default: false },
      'worked-multihop': { type: 'boolean', default: false },
      'vt-confusable': { type: 'string' },
      'vt-follow-ups': { type: 'string' },
      'long-share': { type: 'string' },
      'long-min-length': { type: 'string' },
      'long-max-length': { type: 'string' },
    },
  });
  if (!values.tokenizer || !values.out || !values.chunks) {
    throw new Error('usage: generate-data --tokenizer DIR --out DIR --chunks N [--first-chunk F] [--worker w --workers W] [--text] [plan flags]');
  }
  const plan: CurriculumPlan = {
    ...DEFAULT_PLAN,
    minLength: intArg(values['min-length'], 'min-length', DEFAULT_PLAN.minLength),
    maxLength: intArg(values['max-length'], 'max-length', DEFAULT_PLAN.maxLength),
    startMaxLength: intArg(values['start-max-length'], 'start-max-length', DEFAULT_PLAN.startMaxLength),
    rampChunks: intArg(values['ramp-chunks'], 'ramp-chunks', DEFAULT_PLAN.rampChunks),
    chunkTokens: intArg(values['chunk-tokens'], 'chunk-tokens', DEFAULT_PLAN.chunkTokens),
    seedBase: intArg(values['seed-base'], 'seed-base', DEFAULT_PLAN.seedBase),
    rampStart: intArg(values['ramp-start'], 'ramp-start', DEFAULT_PLAN.rampStart),
    easyChunks: intArg(values['easy-chunks'], 'easy-chunks', DEFAULT_PLAN.easyChunks),
    easyNiahQueries: intArg(values['easy-niah-queries'], 'easy-niah-queries', DEFAULT_PLAN.easyNiahQueries),
    easyStoryQueries: intArg(values['easy-story-queries'], 'easy-story-queries', DEFAULT_PLAN.easyStoryQueries),
    taskWeights: parseTaskWeights(values['task-weights']),
    ...(values['easy-tasks'] ? { easyTasks: parseTaskList(values['easy-tasks'], 'easy-tasks') } : {}),
    ...replyStyleOf(values),
    ...(values['vt-confusable'] ? { vtConfusableShare: shareArg(values['vt-confusable'], 'vt-confusable') } : {}),
    ...(values['vt-follow-ups'] ? { vtFollowUps: intArg(values['vt-follow-ups'], 'vt-follow-ups', 0) } : {}),
    ...(values['long-share']
      ? {
          longShare: shareArg(values['long-share'], 'long-share'),
          longMinLength: intArg(values['long-min-length'], 'long-min-length', 12288),
          longMaxLength: intArg(values['long-max-length'], 'long-max-length', 16384),
        }
      : {}),
  };
  validatePlan(plan);
  const chunks = intArg(values.chunks, 'chunks', 0);
  const first = intArg(values['first-chunk'], 'first-chunk', 0);
  const worker = intArg(values.worker, 'worker', 0);
  const workers = intArg(values.workers, 'workers', 1);
  if (workers < 1 || worker >= workers) throw new Error(`--worker must be below --workers (got ${worker} of ${workers})`);
  const tokenizer = TextTokenizer.fromDirectory(values.tokenizer);
  if (!tokenizer.hasChatTemplate) throw new Error(`${values.tokenizer}: the tokenizer has no chat template`);
  mkdirSync(values.out, { recursive: true });
  const t0 = performance.now();
  let tokens = 0;
  for (let c = first + worker; c < first + chunks; c += workers) {
    const name = join(values.out, `chunk-${String(c).padStart(6, '0')}.jsonl`);
    if (existsSync(name)) continue; // resumable: a finished chunk is never rewritten
    const spec = chunkSpec(c, plan);
    const result = buildChunk(tokenizer, spec, values.text ? 'text' : 'ids');
    writeFileSync(`${name}.part`, result.lines.join('\n') + '\n');
    renameSync(`${name}.part`, name);
    tokens += result.tokens;
    const secs = (performance.now() - t0) / 1000;
    const fb = Object.entries(result.fallbacks).map(([t, n]) => `${t}×${n}`).join(' ');
    process.stderr.write(`worker ${worker}: chunk ${c} n=${spec.length}${spec.long ? ' (long)' : ''} difficulty ${spec.difficulty.toFixed(2)} ${result.lines.length} examples ${JSON.stringify(result.made)}${fb ? ` fallbacks ${fb}` : ''}; ${(tokens / secs).toFixed(0)} tok/s\n`);
  }
}

const invokedDirectly = process.argv[1] !== undefined && /generate-data\.[jt]s$/.test(process.argv[1]);
if (invokedDirectly) main();
