/**
 * `sparse-frontier tasks list` (each task's family, metric, smallest usable n and defaults) and
 * `sparse-frontier tasks sample` (one example's full prompt, its templated token count against the
 * target, and its expected answer). --model needs only tokenizer.json + tokenizer_config.json.
 */
import type { Command } from 'commander';
import { TextTokenizer } from '../../engine/tokenizer.js';
import { DEFAULT_SEED, TEMPLATE_RESERVE, getTask, listTasks, measureSmallestLength } from '../../tasks/index.js';

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]): string => r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ').trimEnd();
  return [line(rows[0] ?? []), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n') + '\n';
}

function integerOption(name: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${raw}"`);
  return v;
}

/** "name=value" flags → task parameters (numbers parsed). */
function parseTaskParams(flags: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const flag of flags) {
    const m = /^([A-Za-z]+)=(.+)$/.exec(flag);
    if (!m) throw new Error(`--param expects name=value (e.g. numQueries=2), got "${flag}"`);
    const raw = m[2] as string;
    out[m[1] as string] = Number.isFinite(Number(raw)) ? Number(raw) : raw;
  }
  return out;
}

export function taskListRows(measured?: Map<string, number | null>): string[][] {
  const header = ['task', 'family', 'metric', measured ? 'smallest n (measured)' : 'smallest n', 'defaults', 'description'];
  return [
    header,
    ...listTasks().map((t) => [
      t.name,
      t.family,
      t.metric,
      measured ? String(measured.get(t.name) ?? 'none ≤ 16384') : String(t.smallestLength),
      Object.entries(t.defaults).map(([k, v]) => `${k}=${String(v)}`).join(', ') || '-',
      t.description,
    ]),
  ];
}

export function registerTasks(program: Command): void {
  const tasks = program.command('tasks').description('The long-context tasks: list them, or print one generated example');

  tasks
    .command('list')
    .description('List the tasks with family, metric, smallest usable length and default parameters')
    .option('--model <dir>', 'with --measure: a folder with tokenizer.json and tokenizer_config.json')
    .option('--measure', 'measure the smallest usable length for --model instead of showing the reference figure')
    .option('--json', 'print as JSON')
    .action((opts: { model?: string; measure?: boolean; json?: boolean }) => {
      let measured: Map<string, number | null> | undefined;
      if (opts.measure) {
        if (!opts.model) throw new Error('--measure needs --model <dir>');
        const tokenizer = TextTokenizer.fromDirectory(opts.model);
        measured = new Map(listTasks().map((t) => [t.name, measureSmallestLength(t, tokenizer)]));
      }
      if (opts.json) {
        const data = listTasks().map((t) => ({
          name: t.name,
          family: t.family,
          metric: t.metric,
          smallestLength: measured ? measured.get(t.name) : t.smallestLength,
          defaults: t.defaults,
          description: t.description,
        }));
        process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
        return;
      }
      process.stdout.write(table(taskListRows(measured)));
      if (!measured) process.stdout.write('\nsmallest n: reference figure for the Llama 3.1 and Qwen 3 tokenizers (measure another with --measure --model DIR)\n');
    });

  tasks
    .command('sample')
    .description("Print one example: the full prompt, its templated token count against the target, and the expected answer")
    .requiredOption('--task <name>', 'task name (see tasks list)')
    .requiredOption('--length <n>', 'target length n in tokens, chat template included')
    .requiredOption('--model <dir>', 'a folder with tokenizer.json and tokenizer_config.json')
    .option('--seed <s>', 'configuration seed', String(DEFAULT_SEED))
    .option('--index <i>', 'example index', '0')
    .option('--data-dir <dir>', 'QA data folder (default: data/qa of this repository)')
    .option('--param <name=value>', 'a task parameter (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--json', 'print the whole example as JSON')
    .action((opts: { task: string; length: string; model: string; seed: string; index: string; dataDir?: string; param: string[]; json?: boolean }) => {
      const task = getTask(opts.task);
      const length = integerOption('length', opts.length, TEMPLATE_RESERVE + 1) as number;
      const seed = integerOption('seed', opts.seed, Number.MIN_SAFE_INTEGER) as number;
      const index = integerOption('index', opts.index, 0) as number;
      const tokenizer = TextTokenizer.fromDirectory(opts.model);
      const [example] = task.generate({ tokenizer, length, count: 1, firstIndex: index, seed, dataDir: opts.dataDir, params: parseTaskParams(opts.param) });
      if (!example) throw new Error('no example was generated');
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(example, null, 2)}\n`);
        return;
      }
      const out = process.stdout;
      out.write(`=== prompt (user message; ${example.id}) ===\n${example.prompt}\n`);
      out.write('=== length ===\n');
      out.write(`templated input: ${example.inputLength} tokens, target ${length} (${((100 * example.inputLength) / length).toFixed(1)}%; bounds ${Math.ceil(0.9 * length)}…${length})\n`);
      out.write(`raw prompt: ${example.rawLength} tokens (limit ${length - TEMPLATE_RESERVE})\n`);
      out.write(`meta: ${JSON.stringify(example.meta)}\n`);
      out.write(`=== expected answer (${example.goldLength} tokens) ===\n${JSON.stringify(example.gold, null, 2)}\n`);
    });
}
