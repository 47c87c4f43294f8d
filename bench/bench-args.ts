/**
 * One command-line parser for the benches: each bench declares a table of its options (name → kind,
 * default, bounds, one line of help) and gets back typed values, a clear error naming the option for
 * bad input, and a usage text generated from the same table for -h / --help.
 *
 * Built on node:util parseArgs (no dependency; commander stays the CLI's, which hands a suite's
 * arguments over untouched). parseArgs runs non-strict with tokens and this module applies the rules
 * itself, so that every message is ours ("--lengths needs a value", "bench cpu: unknown argument
 * --x", "--sparsities: bad sparsity (in [0, 1)) "1"") and a value is always the next argument, even
 * one starting with a dash (`--lengths --quick` is a bad length, not a missing one), as the
 * hand-rolled parsers did. `--name=value` works too; the last of a repeated option wins.
 */
import { parseArgs } from 'node:util';

/** A bad command line; the message names the option and what it takes. */
export class BenchArgsError extends Error {
  override readonly name = 'BenchArgsError';
}

/** -h or --help was given: the bench prints `usage` and exits 0 (bench/bench-run.ts does both). */
export class BenchHelpRequested extends Error {
  override readonly name = 'BenchHelpRequested';
  constructor(readonly usage: string) {
    super(usage);
  }
}

/** One row of an option table; V is the parsed value's type. */
export interface BenchOption<V> {
  /** 'flag': present or absent; 'value': takes the next argument (or --name=value). */
  readonly takes: 'flag' | 'value';
  readonly describe: string;
  /** The value's placeholder in the usage text: N, N,..., FILE, LABEL,... */
  readonly placeholder: string;
  /** The value when the option is absent (never used when required). */
  readonly fallback: V;
  readonly required: boolean;
  /** The default as the usage text shows it; null shows none. */
  readonly defaultText: string | null;
  /** Raw text → value; throws BenchArgsError naming `flag` (the name as given, e.g. --lengths). */
  convert(raw: string, flag: string): V;
}

export type OptionTable = Record<string, BenchOption<unknown>>;

/** 'decode-kv-heads' → 'decodeKvHeads'. */
export type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

/** The parsed options of a table: one camel-cased field per option. */
export type BenchOptionsOf<T extends OptionTable> = {
  -readonly [K in keyof T & string as CamelCase<K>]: T[K] extends BenchOption<infer V> ? V : never;
};

export function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

// ---- numbers ---------------------------------------------------------------------------------

/**
 * What a numeric option or list item takes: bounds (atLeast/atMost inclusive, above/below exclusive),
 * a set of values (oneOf: e.g. the chunk sizes a kernel has) or the positive multiples of a number
 * (multipleOf: e.g. chunk sizes in whole 16-row tiles).
 */
export interface NumberRule {
  integer: boolean; atLeast?: number; above?: number; atMost?: number; below?: number; oneOf?: readonly number[]; multipleOf?: number;
}

/** The rule in words, as error messages show it: "an integer >= 1", "in [0, 1)", "> 0", "16 or 64". */
export function ruleText(r: NumberRule): string {
  if (r.oneOf) return either(r.oneOf.map(String));
  if (r.multipleOf !== undefined) return `a multiple of ${r.multipleOf}`;
  const low = r.atLeast !== undefined ? { v: r.atLeast, open: false } : r.above !== undefined ? { v: r.above, open: true } : null;
  const high = r.atMost !== undefined ? { v: r.atMost, open: false } : r.below !== undefined ? { v: r.below, open: true } : null;
  let bounds = '';
  if (low && high) bounds = `in ${low.open ? '(' : '['}${low.v}, ${high.v}${high.open ? ')' : ']'}`;
  else if (low) bounds = `${low.open ? '>' : '>='} ${low.v}`;
  else if (high) bounds = `${high.open ? '<' : '<='} ${high.v}`;
  if (r.integer) return bounds ? `an integer ${bounds}` : 'an integer';
  return bounds || 'a number';
}

function satisfies(v: number, r: NumberRule): boolean {
  if (!Number.isFinite(v) || (r.integer && !Number.isInteger(v))) return false;
  if (r.oneOf && !r.oneOf.includes(v)) return false;
  if (r.multipleOf !== undefined && !(v > 0 && v % r.multipleOf === 0)) return false;
  if (r.atLeast !== undefined && v < r.atLeast) return false;
  if (r.above !== undefined && v <= r.above) return false;
  if (r.atMost !== undefined && v > r.atMost) return false;
  return !(r.below !== undefined && v >= r.below);
}

/** One number of an option: `raw` as Number() reads it (1e3, 0.5), blank refused, then the rule. */
export function parseNumber(raw: string, rule: NumberRule, flag: string, noun: string): number {
  const v = Number(raw);
  if (raw.trim() === '' || !satisfies(v, rule)) throw new BenchArgsError(`${flag}: bad ${noun} (${ruleText(rule)}) "${raw}"`);
  return v;
}

// ---- option constructors ---------------------------------------------------------------------

interface Described { describe: string; placeholder?: string; defaultText?: string | null }
interface NumberSpec extends Described, Omit<NumberRule, 'integer'> {
  /** What one value is, for messages: "length", "repeat count". */
  noun?: string;
}

function ruleOf(spec: NumberSpec, integer: boolean): NumberRule {
  const { atLeast, above, atMost, below, oneOf, multipleOf } = spec;
  return { integer, atLeast, above, atMost, below, oneOf, multipleOf };
}

function showDefault(v: unknown): string | null {
  if (v === null || v === undefined || typeof v === 'boolean') return null;
  return Array.isArray(v) ? (v.length ? v.join(',') : 'none') : String(v);
}

/** What a constructor decides; the spec's placeholder and defaultText, when given, win over its own. */
interface OptionParts<V> {
  placeholder: string;
  fallback: V;
  convert: (raw: string, flag: string) => V;
  takes?: 'flag' | 'value';
  required?: boolean;
  /** The spec's description with something added (a long list of choices). */
  describe?: string;
}

function option<V>(spec: Described, parts: OptionParts<V>): BenchOption<V> {
  const required = parts.required ?? false;
  return {
    takes: parts.takes ?? 'value', describe: parts.describe ?? spec.describe, placeholder: spec.placeholder ?? parts.placeholder, fallback: parts.fallback, required,
    defaultText: spec.defaultText !== undefined ? spec.defaultText : required ? null : showDefault(parts.fallback), convert: parts.convert,
  };
}

/** Present or absent (false when absent). */
export function flag(describe: string): BenchOption<boolean> {
  return option({ describe }, { takes: 'flag', placeholder: '', fallback: false, convert: () => true });
}

/** A free string (a file, a folder, a name). Without a default and not required: null when absent. */
export function text(spec: Described & { default: string }): BenchOption<string>;
export function text(spec: Described & { required: true }): BenchOption<string>;
export function text(spec: Described): BenchOption<string | null>;
export function text(spec: Described & { default?: string; required?: boolean }): BenchOption<string | null> {
  return option(spec, { placeholder: 'TEXT', fallback: spec.default ?? null, required: spec.required === true, convert: (raw) => raw });
}

/** One integer. */
export function int(spec: NumberSpec & { default: number }): BenchOption<number> {
  const rule = ruleOf(spec, true);
  return option(spec, { placeholder: 'N', fallback: spec.default, convert: (raw, f) => parseNumber(raw, rule, f, spec.noun ?? 'value') });
}

/** One number. */
export function num(spec: NumberSpec & { default: number }): BenchOption<number> {
  const rule = ruleOf(spec, false);
  return option(spec, { placeholder: 'X', fallback: spec.default, convert: (raw, f) => parseNumber(raw, rule, f, spec.noun ?? 'value') });
}

interface ListSpec extends NumberSpec {
  /** Whether 'none' stands for the empty list (a part of the bench skipped). */
  none?: boolean;
}

function numberList(spec: ListSpec, integer: boolean): (raw: string, flag: string) => number[] {
  const rule = ruleOf(spec, integer);
  return (raw, f) => (spec.none && raw === 'none' ? [] : raw.split(',').map((x) => parseNumber(x, rule, f, spec.noun ?? 'value')));
}

/** Comma-separated integers ("none": [] where allowed); null when absent without a default. */
export function intList(spec: ListSpec & { default: number[] }): BenchOption<number[]>;
export function intList(spec: ListSpec): BenchOption<number[] | null>;
export function intList(spec: ListSpec & { default?: number[] }): BenchOption<number[] | null> {
  return option(spec, { placeholder: spec.none ? 'N,...|none' : 'N,...', fallback: spec.default ?? null, convert: numberList(spec, true) });
}

/** Comma-separated numbers. */
export function numList(spec: ListSpec & { default: number[] }): BenchOption<number[]> {
  return option(spec, { placeholder: 'X,...', fallback: spec.default, convert: numberList(spec, false) });
}

/** Comma-separated sparsities in [0, 1). */
export function sparsityList(spec: Described & { default: number[] }): BenchOption<number[]> {
  return numList({ ...spec, placeholder: spec.placeholder ?? 'S,...', atLeast: 0, below: 1, noun: 'sparsity' });
}

/** "a", "a or b", "a, b or c". */
function either(choices: readonly string[]): string {
  return choices.length < 2 ? choices.join('') : `${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}`;
}

/** Widest list of choices shown as the placeholder; a longer one is listed after the description. */
const CHOICES_IN_PLACEHOLDER = 40;

function choiceParts(spec: Described, choices: readonly string[], suffix: string): { placeholder: string; describe: string } {
  const joined = choices.join('|');
  if (joined.length <= CHOICES_IN_PLACEHOLDER) return { placeholder: `${joined}${suffix}`, describe: spec.describe };
  return { placeholder: `NAME${suffix}`, describe: `${spec.describe}; one of ${choices.join(', ')}` };
}

function checkChoice<C extends string>(x: string, choices: readonly C[] | undefined, f: string): C {
  if (choices && !choices.includes(x as C)) throw new BenchArgsError(`${f}: "${x}" is not ${either(choices)}`);
  return x as C;
}

interface LabelSpec<C extends string> extends Described {
  /** The labels allowed (others refused, naming these); absent: any label. */
  choices?: readonly C[];
}

/**
 * Comma-separated labels (empty items dropped, an empty list refused); null when absent without a
 * default (callers read null as "all").
 */
export function labels<const C extends string = string>(spec: LabelSpec<C> & { default: C[] }): BenchOption<C[]>;
export function labels<const C extends string = string>(spec: LabelSpec<C>): BenchOption<C[] | null>;
export function labels<C extends string>(spec: LabelSpec<C> & { default?: C[] }): BenchOption<C[] | null> {
  const shown = spec.choices ? choiceParts(spec, spec.choices, ',...') : { placeholder: 'LABEL,...', describe: spec.describe };
  return option(spec, {
    ...shown, fallback: spec.default ?? null, convert: (raw, f) => {
      const items = raw.split(',').filter((x) => x !== '');
      if (!items.length) throw new BenchArgsError(`${f}: an empty list`);
      return items.map((x) => checkChoice(x, spec.choices, f));
    },
  });
}

/** One of a fixed set of words. */
export function choice<const C extends string>(spec: Described & { choices: readonly C[]; default: C }): BenchOption<C> {
  return option(spec, { ...choiceParts(spec, spec.choices, ''), fallback: spec.default, convert: (raw, f) => checkChoice(raw, spec.choices, f) });
}

interface ListOfSpec<V> extends Described {
  /** Parses one item; throws on a bad one (its message is kept, prefixed with the option unless it names it already). */
  item: (raw: string) => V;
}

/**
 * Comma-separated items of the bench's own syntax (e.g. organism shapes 8x384x6x2x1152); null when
 * absent without a default.
 */
export function list<V>(spec: ListOfSpec<V> & { default: V[] }): BenchOption<V[]>;
export function list<V>(spec: ListOfSpec<V>): BenchOption<V[] | null>;
export function list<V>(spec: ListOfSpec<V> & { default?: V[] }): BenchOption<V[] | null> {
  const one = (x: string, f: string): V => {
    try {
      return spec.item(x);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      throw new BenchArgsError(message.startsWith(`${f}:`) ? message : `${f}: ${message}`);
    }
  };
  return option(spec, { placeholder: 'ITEM,...', fallback: spec.default ?? null, convert: (raw, f) => raw.split(',').map((x) => one(x, f)) });
}

// ---- the parser ------------------------------------------------------------------------------

/** Indent of the option lines in the usage text, and the widest option head kept on its own line's left. */
const USAGE_INDENT = 2;
const USAGE_HEAD_WIDTH = 30;

/** A bench's command line: its name, one line saying what it does, and its option table. */
export class BenchArgs<T extends OptionTable> {
  /**
   * program: how errors name the bench ("bench cpu"); invocation: how the usage line starts (default
   * the program).
   */
  constructor(readonly program: string, readonly summary: string, readonly table: T, readonly invocation = program) {
    if (Object.hasOwn(table, 'help')) throw new Error(`${program}: --help is every bench's own; choose another option name`);
    for (const name of Object.keys(table)) {
      if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(name)) throw new Error(`${program}: option name "${name}" is not lower-case words joined by dashes`);
    }
  }

  /** The usage text -h / --help prints: one line per option, its default in brackets. */
  usage(): string {
    const rows = Object.entries(this.table).map(([name, o]) => {
      const head = `--${name}${o.takes === 'value' ? ` ${o.placeholder}` : ''}`;
      const tail = o.required ? ' (required)' : o.defaultText !== null ? ` [default ${o.defaultText}]` : '';
      return [head, `${o.describe}${tail}`];
    });
    rows.push(['-h, --help', 'print this and exit']);
    const width = Math.min(USAGE_HEAD_WIDTH, Math.max(...rows.map(([h]) => h.length))) + 2;
    const pad = ' '.repeat(USAGE_INDENT);
    // A head wider than the column gets its description on the next line, in the column.
    const line = ([h, d]: string[]) => (h.length + 2 > width ? `${pad}${h}\n${pad}${' '.repeat(width)}${d}` : `${pad}${h.padEnd(width)}${d}`);
    return [`usage: ${this.invocation} [options]`, this.summary, '', ...rows.map(line)].join('\n');
  }

  /** The options argv gives, with the names of those it gave (for defaults that depend on others). */
  parseWithPresence(argv: readonly string[]): { options: BenchOptionsOf<T>; given: ReadonlySet<keyof T & string> } {
    const nodeOptions: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
    for (const [name, o] of Object.entries(this.table)) nodeOptions[name] = { type: o.takes === 'flag' ? 'boolean' : 'string' };
    const { tokens } = parseArgs({ args: [...argv], options: nodeOptions, strict: false, allowPositionals: true, tokens: true });
    // Help wins over anything else on the line, so `--lengths x --help` still shows the options.
    if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) throw new BenchHelpRequested(this.usage());
    const values = new Map<string, unknown>();
    for (const t of tokens) {
      if (t.kind === 'positional') throw this.unknown(t.value);
      if (t.kind === 'option-terminator') throw this.unknown('--');
      const o = Object.hasOwn(this.table, t.name) ? this.table[t.name] : undefined;
      // A long option's raw name is --name; a short one (-x) is never in a table.
      if (!o || !t.rawName.startsWith('--')) throw this.unknown(t.rawName);
      if (o.takes === 'flag') {
        if (t.value !== undefined) throw new BenchArgsError(`${t.rawName} takes no value (got "${t.value}")`);
        values.set(t.name, true);
      } else {
        if (t.value === undefined) throw new BenchArgsError(`${t.rawName} needs a value`);
        values.set(t.name, o.convert(t.value, t.rawName));
      }
    }
    const options: Record<string, unknown> = {};
    for (const [name, o] of Object.entries(this.table)) {
      if (o.required && !values.has(name)) throw new BenchArgsError(`${this.program}: --${name} ${o.placeholder} is required`);
      options[camelCase(name)] = values.has(name) ? values.get(name) : o.fallback;
    }
    return { options: options as BenchOptionsOf<T>, given: new Set(values.keys()) as Set<keyof T & string> };
  }

  /** The options argv gives; BenchArgsError for a bad line, BenchHelpRequested for -h / --help. */
  parse(argv: readonly string[]): BenchOptionsOf<T> {
    return this.parseWithPresence(argv).options;
  }

  private unknown(arg: string): BenchArgsError {
    const known = Object.keys(this.table).map((n) => `--${n}`).join(', ');
    return new BenchArgsError(`${this.program}: unknown argument ${arg} (options: ${known || 'none'}; --help describes them)`);
  }
}

export function defineBenchArgs<T extends OptionTable>(program: string, summary: string, table: T, invocation?: string): BenchArgs<T> {
  return new BenchArgs(program, summary, table, invocation);
}
