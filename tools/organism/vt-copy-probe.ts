/**
 * Inputs for a teacher-forced check of VT's name copy (run 7b's failure; run 8's target), on the CPU:
 * VT instances at one length from training-range seeds, each as generated and with confusable names
 * (vt-confusable.ts), with the worked reply and the token span of every chain name in its explanation.
 * tools/organism/vt_copy_probe.py scores a checkpoint on them (first token, each whole name given the
 * right previous ones, the whole chain).
 *
 *   npx tsx tools/organism/vt-copy-probe.ts --model models/organism --out /tmp/vt-probe.json [--count 24] [--length 2048] [--seed 30000000]
 *
 * One JSON array of {kind: "uniform" | "confusable", index, ids, spans: [[start, end], …]}: ids are the
 * templated prompt and the worked reply (without end of turn), spans the positions of each name's
 * tokens (` QNLKR`, as in the prompt) in ids, in chain order.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { getTask, type TaskExample } from '../../src/tasks/index.js';
import type { VtGold } from '../../src/tasks/ruler/vt.js';
import { replyParts, TRAINING_SEED_BASE } from './training-format.js';
import { renameDraw, withConfusableNames } from './vt-confusable.js';

export interface CopyProbeRow {
  kind: 'uniform' | 'confusable';
  index: number;
  ids: number[];
  spans: [number, number][];
}

/**
 * Token spans of the chain's names in the worked VT reply `text` (offset by `offset`): each name's
 * ` NAME` tokens after its `VAR`. Checked by decoding, so a tokenisation that splits differently fails.
 */
export function nameSpans(tokenizer: TextTokenizer, text: string, variables: readonly string[], offset: number): [number, number][] {
  const ids = tokenizer.encode(text);
  let at = 0;
  return variables.map((v) => {
    const found = text.indexOf(`VAR ${v}`, at);
    if (found < 0) throw new Error(`vt reply names no "VAR ${v}" after character ${at}`);
    const start = found + 'VAR'.length;
    at = start + 1 + v.length;
    const a = tokenizer.encode(text.slice(0, start)).length;
    const b = tokenizer.encode(text.slice(0, at)).length;
    const piece = tokenizer.decode(ids.slice(a, b), { skipSpecialTokens: false });
    if (piece !== ` ${v}`) throw new Error(`vt reply: tokens ${a}–${b} decode to "${piece}", not " ${v}"`);
    return [offset + a, offset + b];
  });
}

export function copyProbeRows(tokenizer: TextTokenizer, count: number, length: number, seed: number): CopyProbeRow[] {
  if (!(seed >= TRAINING_SEED_BASE)) throw new Error(`seed must be ≥ ${TRAINING_SEED_BASE} (clear of the evaluation seeds), got ${seed}`);
  const rows: CopyProbeRow[] = [];
  for (let index = 0; index < count; index++) {
    const [generated] = getTask('vt').generate({ tokenizer, length, count: 1, seed, firstIndex: index });
    const uniform = generated as TaskExample<VtGold>;
    const renamed = withConfusableNames(uniform, tokenizer, renameDraw(uniform.seed, uniform.index, 1)!);
    const versions = [['uniform', uniform] as const, ...(renamed ? [['confusable', renamed.example] as const] : [])];
    for (const [kind, example] of versions) {
      const { head, answer } = replyParts(example, { workedLookups: true });
      const text = head + answer + '\n</answer>';
      rows.push({ kind, index, ids: [...example.inputIds, ...tokenizer.encode(text)], spans: nameSpans(tokenizer, text, example.gold.variables, example.inputLength) });
    }
  }
  return rows;
}

function main(): void {
  const { values } = parseArgs({
    options: { model: { type: 'string' }, out: { type: 'string' }, count: { type: 'string' }, length: { type: 'string' }, seed: { type: 'string' } },
  });
  if (!values.model || !values.out) throw new Error('usage: vt-copy-probe --model DIR --out FILE [--count 24] [--length 2048] [--seed 30000000]');
  const count = Number(values.count ?? 24);
  const length = Number(values.length ?? 2048);
  const seed = Number(values.seed ?? 30_000_000);
  for (const [name, n] of [['count', count], ['length', length], ['seed', seed]] as const) {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${n}`);
  }
  const rows = copyProbeRows(TextTokenizer.fromDirectory(values.model), count, length, seed);
  writeFileSync(values.out, JSON.stringify(rows));
  process.stderr.write(`${rows.length} rows (${count} instances, as generated and renamed) -> ${values.out}\n`);
}

const invokedDirectly = process.argv[1] !== undefined && /vt-copy-probe\.[jt]s$/.test(process.argv[1]);
if (invokedDirectly) main();
