/**
 * `sparse-frontier methods`: the attention methods as a table of the paper's four axes (unit,
 * importance estimation, budget allocation, KV cache) with their parameters and the original's
 * defaults. With --length and --sparsity it also shows what each method derives from that budget
 * (counts, expected sparsity, and why it may differ from the request).
 */
import type { Command } from 'commander';
import { describeBudget, listMethods } from '../../methods/index.js';
import type { BudgetDescription, MethodDescriptor, ParamSpec } from '../../methods/index.js';

/** Fixed-width text table; the first row is the header. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((cell, c) => (cell ?? '').padEnd(widths[c])).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n') + '\n';
}

function paramText(p: ParamSpec): string {
  if (p.default !== undefined) return `${p.name}=${p.default}`;
  return p.originalDefault !== undefined ? `${p.name} (budget; original ${p.originalDefault})` : `${p.name} (budget)`;
}

export function methodRows(methods: MethodDescriptor[]): string[][] {
  const header = ['id', 'phase', 'unit', 'importance estimation', 'budget', 'KV cache', 'parameters'];
  return [header, ...methods.map((m) => [
    m.id, m.phase, m.taxonomy.unit, m.taxonomy.importance, m.taxonomy.budget, m.taxonomy.kvCache, m.params.map(paramText).join(', ') || '-',
  ])];
}

function countsText(d: BudgetDescription): string {
  return Object.entries(d.counts).map(([k, v]) => `${k}=${v}`).join(', ') || '-';
}

export function budgetRows(methods: MethodDescriptor[], n: number, sparsity: number, params: Record<string, Record<string, unknown>>): string[][] {
  const header = ['id', 'counts at n', 'expected s', 'note'];
  return [header, ...methods.map((m) => {
    try {
      const d = describeBudget(m.id, n, { sparsity: m.id === 'dense' ? 0 : sparsity, params: params[m.id] ?? {} });
      const expected = d.expectedSparsity === null ? 'content-dependent' : d.expectedSparsity.toFixed(4);
      return [m.id, countsText(d), expected, d.note ?? ''];
    } catch (err) {
      return [m.id, '-', '-', err instanceof Error ? err.message : String(err)];
    }
  })];
}

/** "method.name=value" → params[method][name] = value (numbers and booleans parsed). */
export function parseParamFlags(flags: string[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const flag of flags) {
    const match = /^([a-z_]+)\.([A-Za-z]+)=(.+)$/.exec(flag);
    if (!match) throw new Error(`--param expects method.name=value (e.g. snapkv.kernelSize=7), got "${flag}"`);
    const [, method, name, raw] = match;
    const value: unknown = raw === 'true' ? true : raw === 'false' ? false : Number.isFinite(Number(raw)) ? Number(raw) : raw;
    (out[method] ??= {})[name] = value;
  }
  return out;
}

export function registerMethods(program: Command): void {
  program
    .command('methods')
    .description('List the attention methods with their place on the paper\'s four axes and their parameters')
    .option('--json', 'print the method descriptors as JSON')
    .option('--length <n>', 'prompt length: also show the budget each method derives')
    .option('--sparsity <s>', 'target sparsity in [0, 1) for --length', '0.9')
    .option('--param <method.name=value>', 'a method parameter for --length (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action((opts: { json?: boolean; length?: string; sparsity: string; param: string[] }) => {
      const methods = listMethods();
      if (opts.json) {
        const data = methods.map(({ id, title, phase, taxonomy, summary, params, budgetParams }) => ({ id, title, phase, taxonomy, summary, params, budgetParams }));
        process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
        return;
      }
      process.stdout.write(formatTable(methodRows(methods)));
      if (opts.length !== undefined) {
        const n = Number(opts.length);
        if (!Number.isInteger(n) || n < 1) throw new Error(`--length must be a positive integer, got ${opts.length}`);
        const s = Number(opts.sparsity);
        if (!Number.isFinite(s) || s < 0 || s >= 1) throw new Error(`--sparsity must be a number in [0, 1), got ${opts.sparsity}`);
        process.stdout.write(`\nBudgets at n=${n}, s=${s}:\n`);
        process.stdout.write(formatTable(budgetRows(methods, n, s, parseParamFlags(opts.param))));
      }
    });
}
