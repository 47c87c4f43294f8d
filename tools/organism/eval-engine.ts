/**
 * Greedy outputs of OUR CPU engine (dense attention) on the organism's evaluation set, in the
 * predictions format score-predictions.ts reads, plus the prefill speed it reached.
 *
 *   node eval-engine.js --model DIR --eval FILE.jsonl[.gz] --out PRED.jsonl [--lengths 1024,2048]
 *        [--tasks niah,vt] [--count 5]
 *
 * Each example generates at most 4 × its gold length + 64 tokens (run 7's worked explanations restate
 * every lookup before the answer; train.py's reply_budget is the same rule), capped at 1024 as SPEC §3
 * says, and stops at the checkpoint's stop ids.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { TransformerModel } from '../../src/engine/model.js';
import { generateTokens } from '../../src/engine/generate.js';
import type { EvalRecord } from './make-eval-set.js';
import { readJsonLines } from './score-predictions.js';

/** Reply budget for one example: the gold answer, an explanation of up to three times its length, tags. */
export function replyBudget(goldLength: number): number {
  return Math.min(1024, 4 * goldLength + 64);
}

/** The examples to run: those of the given tasks and lengths, the first `count` of each cell. */
export function selectExamples(all: EvalRecord[], filter: { lengths?: number[]; tasks?: string[]; count?: number }): EvalRecord[] {
  const perCell = new Map<string, number>();
  return all.filter((e) => {
    if (filter.lengths && !filter.lengths.includes(e.length)) return false;
    if (filter.tasks && !filter.tasks.includes(e.task)) return false;
    const key = `${e.task}\t${e.length}`;
    const n = perCell.get(key) ?? 0;
    if (filter.count !== undefined && n >= filter.count) return false;
    perCell.set(key, n + 1);
    return true;
  });
}

function main(): void {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      eval: { type: 'string' },
      out: { type: 'string' },
      lengths: { type: 'string' },
      tasks: { type: 'string' },
      count: { type: 'string' },
    },
  });
  if (!values.model || !values.eval || !values.out) throw new Error('usage: eval-engine --model DIR --eval FILE --out PRED.jsonl [--lengths …] [--tasks …] [--count N]');
  const ckpt = loadCheckpoint(values.model);
  const model = new TransformerModel(ckpt.config, ckpt.weights);
  const examples = selectExamples(readJsonLines<EvalRecord>(values.eval), {
    lengths: values.lengths?.split(',').map(Number),
    tasks: values.tasks?.split(','),
    count: values.count === undefined ? undefined : Number(values.count),
  });
  writeFileSync(values.out, '');
  let prefillTokens = 0;
  let prefillSeconds = 0;
  for (const ex of examples) {
    const [r] = generateTokens(model, [ex.inputIds], { maxNewTokens: replyBudget(ex.goldLength), stopTokenIds: ckpt.stopTokenIds });
    const ids = r.tokenIds.filter((t) => !ckpt.stopTokenIds.includes(t));
    const output = ckpt.tokenizer.decode(ids, { skipSpecialTokens: true });
    appendFileSync(values.out, JSON.stringify({ id: ex.id, task: ex.task, length: ex.length, output_ids: ids, output }) + '\n');
    prefillTokens += r.promptTokens;
    prefillSeconds += r.prefillSeconds;
    process.stderr.write(
      `${ex.id}: prefill ${r.promptTokens} tokens in ${r.prefillSeconds.toFixed(2)} s (${(r.promptTokens / r.prefillSeconds).toFixed(0)} tok/s), ` +
        `${r.generatedTokens} new tokens in ${r.decodeSeconds.toFixed(2)} s\n`,
    );
  }
  process.stderr.write(`engine ${model.kernel.name}: ${examples.length} examples, mean prefill ${(prefillTokens / Math.max(prefillSeconds, 1e-9)).toFixed(0)} tok/s\n`);
}

const invokedDirectly = process.argv[1] !== undefined && /eval-engine\.[jt]s$/.test(process.argv[1]);
if (invokedDirectly) main();
