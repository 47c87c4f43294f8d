/**
 * Held-out evaluation examples for the model organism: the tasks' default evaluation seeds (43 + i),
 * never used in training (training seeds are ≥ 10^6).
 *
 *   node make-eval-set.js --model DIR --out FILE.jsonl[.gz] [--lengths 1024,2048,…] [--count 20]
 *        [--count-at 16384=10] [--tasks niah,vt,…] [--seed 43]
 *
 * One line per example: {"id", "task", "length", "index", "seed", "inputIds", "gold", "goldLength"}.
 * Examples a task cannot build at a length (TaskExampleError) are listed on stderr and left out.
 */
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { DEFAULT_SEED, getTask, TaskExampleError, type TaskExample } from '../../src/tasks/index.js';
import { TRAINING_TASKS } from './training-format.js';

export interface EvalRecord {
  id: string;
  task: string;
  length: number;
  index: number;
  seed: number;
  inputIds: number[];
  gold: unknown;
  goldLength: number;
}

export function toEvalRecord(e: TaskExample): EvalRecord {
  return { id: e.id, task: e.task, length: e.length, index: e.index, seed: e.seed, inputIds: e.inputIds, gold: e.gold, goldLength: e.goldLength };
}

/** Examples 0 … count − 1 of `task` at `length`, one at a time so one misfit does not lose the rest. */
export function evalExamples(tokenizer: TextTokenizer, task: string, length: number, count: number, seed: number, onMiss: (e: TaskExampleError) => void): TaskExample[] {
  const made: TaskExample[] = [];
  for (let i = 0; i < count; i++) {
    try {
      made.push(...(getTask(task).generate({ tokenizer, length, count: 1, firstIndex: i, seed }) as TaskExample[]));
    } catch (e) {
      if (!(e instanceof TaskExampleError)) throw e;
      onMiss(e);
    }
  }
  return made;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      out: { type: 'string' },
      lengths: { type: 'string', default: '1024,2048,4096,8192,16384' },
      count: { type: 'string', default: '20' },
      'count-at': { type: 'string', multiple: true, default: [] },
      tasks: { type: 'string', default: TRAINING_TASKS.join(',') },
      seed: { type: 'string', default: String(DEFAULT_SEED) },
    },
  });
  if (!values.model || !values.out) throw new Error('usage: make-eval-set --model DIR --out FILE [--lengths …] [--count N] [--count-at LEN=N] [--tasks …]');
  const tokenizer = TextTokenizer.fromDirectory(values.model);
  const lengths = values.lengths.split(',').map(Number);
  const count = Number(values.count);
  const countAt = new Map<number, number>(values['count-at'].map((s) => s.split('=').map(Number) as [number, number]));
  const seed = Number(values.seed);
  const lines: string[] = [];
  for (const task of values.tasks.split(',')) {
    for (const length of lengths) {
      const t0 = performance.now();
      let misses = 0;
      const examples = evalExamples(tokenizer, task, length, countAt.get(length) ?? count, seed, (e) => {
        misses++;
        if (misses <= 2) process.stderr.write(`skip: ${e.message}\n`);
      });
      lines.push(...examples.map((e) => JSON.stringify(toEvalRecord(e))));
      process.stderr.write(`${task} n=${length}: ${examples.length} examples, ${misses} could not be built (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    }
  }
  const text = lines.join('\n') + '\n';
  writeFileSync(values.out, values.out.endsWith('.gz') ? gzipSync(text) : text);
}

const invokedDirectly = process.argv[1] !== undefined && /make-eval-set\.[jt]s$/.test(process.argv[1]);
if (invokedDirectly) main();
