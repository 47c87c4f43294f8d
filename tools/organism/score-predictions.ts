/**
 * Score model outputs on the evaluation set with the tasks' own scorers and print a table
 * (task × length: mean, examples scored, dropped).
 *
 *   node score-predictions.js --eval FILE.jsonl[.gz] --predictions FILE.jsonl [--json OUT.json] [--label TEXT]
 *
 * predictions: lines {"id", "output"} (train.py's predictions.jsonl, or eval-engine.ts's output).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { aggregate, getTask, type Aggregate } from '../../src/tasks/index.js';
import type { EvalRecord } from './make-eval-set.js';

export function readJsonLines<T>(path: string): T[] {
  const raw = readFileSync(path);
  const text = path.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
  return text.split('\n').filter((l) => l.trim() !== '').map((l, i) => {
    try {
      return JSON.parse(l) as T;
    } catch (e) {
      throw new Error(`${path}: line ${i + 1} is not JSON (${(e as Error).message})`);
    }
  });
}

export interface ScoreCell extends Aggregate {
  task: string;
  length: number;
}

/** Per (task, length): the aggregate of the task's own per-example scores. */
export function scoreOutputs(examples: EvalRecord[], outputs: Map<string, string>): ScoreCell[] {
  const cells = new Map<string, { task: string; length: number; scores: (number | null)[] }>();
  for (const ex of examples) {
    const output = outputs.get(ex.id);
    if (output === undefined) continue;
    const key = `${ex.task}\t${ex.length}`;
    let cell = cells.get(key);
    if (!cell) cells.set(key, (cell = { task: ex.task, length: ex.length, scores: [] }));
    cell.scores.push(getTask(ex.task).score({ gold: ex.gold }, output).score);
  }
  return [...cells.values()].map((c) => ({ task: c.task, length: c.length, ...aggregate(c.scores) }));
}

/** Markdown table: one row per task, one column per length, "mean (n scored[, d dropped])". */
export function scoreTable(cells: ScoreCell[]): string {
  const lengths = [...new Set(cells.map((c) => c.length))].sort((a, b) => a - b);
  const tasks = [...new Set(cells.map((c) => c.task))];
  const head = `| task | ${lengths.map((l) => (l >= 1024 ? `${l / 1024}K` : String(l))).join(' | ')} |`;
  const rule = `|---|${lengths.map(() => '---').join('|')}|`;
  const rows = tasks.map((t) => {
    const cols = lengths.map((l) => {
      const c = cells.find((x) => x.task === t && x.length === l);
      if (!c) return '—';
      return `${c.mean.toFixed(2)} (${c.n}${c.dropped ? `, ${c.dropped} dropped` : ''})`;
    });
    return `| ${t} | ${cols.join(' | ')} |`;
  });
  return [head, rule, ...rows].join('\n');
}

function main(): void {
  const { values } = parseArgs({ options: { eval: { type: 'string' }, predictions: { type: 'string' }, json: { type: 'string' }, label: { type: 'string' } } });
  if (!values.eval || !values.predictions) throw new Error('usage: score-predictions --eval FILE --predictions FILE [--json OUT] [--label TEXT]');
  const examples = readJsonLines<EvalRecord>(values.eval);
  const outputs = new Map(readJsonLines<{ id: string; output: string }>(values.predictions).map((p) => [p.id, p.output]));
  const cells = scoreOutputs(examples, outputs);
  if (values.label) console.log(values.label);
  console.log(scoreTable(cells));
  if (values.json) writeFileSync(values.json, JSON.stringify(cells.map(({ scores, ...rest }) => ({ ...rest, scores })), null, 1) + '\n');
}

const invokedDirectly = process.argv[1] !== undefined && /score-predictions\.[jt]s$/.test(process.argv[1]);
if (invokedDirectly) main();
