/**
 * Training-only VT variant (run 8): the same instance with its variables renamed so that names share
 * first letters and prefixes within the instance. Run 7b found the chain's statement from the value
 * (first letter right in 59 of 60 held-out replies) but continued the name from another variable with
 * the same first letter half the time: with names drawn uniformly, and above all in the easy instances
 * (4 variables), the first letter nearly always identifies the variable, so copying the rest by
 * first-letter induction is rewarded. Here every variable shares a prefix of 1–4 letters with 1–3
 * others, so only a copy of the whole name from the statement found is right.
 *
 * The SPEC's VT (src/tasks/ruler/vt.ts), which evaluation uses, is untouched: this rewrites a
 * generated example (prompt, input ids, gold) after the fact. The names stay five uppercase letters,
 * the statements, the values, the filler and their order stay as generated.
 */
import { SeededRandom, type TaskExample } from '../../src/tasks/index.js';
import { VT_NOISE, type VtGold } from '../../src/tasks/ruler/vt.js';
import type { TextTokenizer } from '../../src/engine/tokenizer.js';

const UPPER = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'];
const NAME_LENGTH = 5;
/** The prompt's own examples ("VAR QWERT = 24680", "VAR ASDFG = VAR QWERT"): never a variable's new name. */
const RESERVED = new Set(['QWERT', 'ASDFG']);
/** Renaming seeds sit here, below every task seed (≥ 10^6) and the chunk seeds (seedBase − 1 − c). */
const RENAME_SEED_OFFSET = -(2 ** 40);

/** A statement of the context: `VAR NAME = 12345` or `VAR NAME = VAR OTHER`. */
const STATEMENT = /VAR ([A-Z]{5}) = (?:(\d+)|VAR ([A-Z]{5}))/g;

/** One statement of a VT context: `target` assigned a number (`value`) or another variable (`source`). */
export interface VtStatement {
  target: string;
  value?: number;
  source?: string;
}

export interface ConfusableResult {
  example: TaskExample<VtGold>;
  /** Old name → new name, for every variable of the context. */
  renaming: Map<string, string>;
}

/** The context between the prompt's `<context>` tags (the intro's example statements are outside it). */
function contextSpan(prompt: string): { start: number; end: number } {
  const open = '<context>\n';
  const start = prompt.indexOf(open);
  const end = prompt.indexOf('\n</context>', start);
  if (start < 0 || end < 0) throw new Error('vt prompt has no <context> … </context> block');
  return { start: start + open.length, end };
}

/** The statements of the prompt's context, in order (the intro's example statements are outside it). */
export function contextStatements(prompt: string): VtStatement[] {
  const { start, end } = contextSpan(prompt);
  return [...prompt.slice(start, end).matchAll(STATEMENT)].map((m) =>
    m[2] !== undefined ? { target: m[1] as string, value: Number(m[2]) } : { target: m[1] as string, source: m[3] as string });
}

/** Every variable named in the context's statements, in order of first appearance. */
export function contextVariables(prompt: string): string[] {
  const seen = new Set<string>();
  for (const { target, source } of contextStatements(prompt)) {
    for (const name of [target, source]) if (name !== undefined) seen.add(name);
  }
  return [...seen];
}

/**
 * New names for `names`: shuffled into groups of 2–4 (a lone last name joins the group before it);
 * each group shares a prefix of 1–4 random letters, completed by random letters; all names distinct,
 * none of the prompt's example names. Needs at least 2 names.
 */
export function confusableNames(rng: SeededRandom, names: readonly string[]): Map<string, string> {
  if (names.length < 2) throw new Error(`confusable names need at least 2 variables, got ${names.length}`);
  const order = rng.shuffle([...names]);
  const groups: string[][] = [];
  for (let i = 0; i < order.length; ) {
    const size = Math.min(2 + rng.int(3), order.length - i);
    groups.push(order.slice(i, i + size));
    i += size;
  }
  const last = groups[groups.length - 1] as string[];
  if (last.length === 1 && groups.length > 1) {
    groups.pop();
    (groups[groups.length - 1] as string[]).push(last[0] as string);
  }
  const used = new Set<string>(RESERVED);
  const renaming = new Map<string, string>();
  for (const group of groups) {
    // A group of g names sharing k letters needs g distinct completions of 5 − k letters; a 4-letter
    // prefix leaves 26, plenty for at most 5 names (a merged last group).
    const prefix = rng.choices(UPPER, 1 + rng.int(4)).join('');
    for (const old of group) {
      let name: string;
      do name = prefix + rng.choices(UPPER, NAME_LENGTH - prefix.length).join('');
      while (used.has(name));
      used.add(name);
      renaming.set(old, name);
    }
  }
  return renaming;
}

function renameStatements(text: string, renaming: Map<string, string>): string {
  return text.replace(/VAR ([A-Z]{5})/g, (whole, name: string) => {
    const to = renaming.get(name);
    return to === undefined ? whole : `VAR ${to}`;
  });
}

/** Whether example (seed, index) is renamed, for a share in [0, 1], and the rng of its new names. */
export function renameDraw(seed: number, index: number, share: number): SeededRandom | null {
  if (!(share >= 0 && share <= 1)) throw new Error(`VT confusable share must be in [0, 1], got ${share}`);
  const rng = new SeededRandom(RENAME_SEED_OFFSET - seed - index);
  return rng.float() < share ? rng : null;
}

/**
 * The example with confusable names (see the file comment), or null when the renamed prompt does not
 * fit `example.length` even after dropping every filler group (it then stays as generated). Filler
 * groups are dropped one at a time from the start of the context while the templated input is too
 * long (new names can take a token or two more than the old ones).
 */
export function withConfusableNames(example: TaskExample<VtGold>, tokenizer: TextTokenizer, rng: SeededRandom): ConfusableResult | null {
  if (example.task !== 'vt') throw new Error(`confusable names are for VT examples, got ${example.task}`);
  const renaming = confusableNames(rng, contextVariables(example.prompt));
  const { start, end } = contextSpan(example.prompt);
  let context = renameStatements(example.prompt.slice(start, end), renaming);
  const promptOf = (ctx: string) => example.prompt.slice(0, start) + ctx + example.prompt.slice(end);
  let inputIds = tokenizer.encodeUserPrompt(promptOf(context));
  while (inputIds.length > example.length) {
    const at = context.indexOf(VT_NOISE);
    if (at < 0) return null;
    // the filler group and the space that joins it to the next sentence (or the one before it, at the end)
    context = at + VT_NOISE.length < context.length ? context.slice(0, at) + context.slice(at + VT_NOISE.length + 1) : context.slice(0, Math.max(0, at - 1));
    inputIds = tokenizer.encodeUserPrompt(promptOf(context));
  }
  const prompt = promptOf(context);
  const variables = example.gold.variables.map((v) => {
    const to = renaming.get(v);
    if (to === undefined) throw new Error(`vt: gold variable ${v} is not in the context's statements`);
    return to;
  });
  const text = variables.join(' ');
  return {
    renaming,
    example: {
      ...example,
      prompt,
      inputIds,
      inputLength: inputIds.length,
      // the chat template's share is the same for any user message: no third encoding of a long prompt
      rawLength: example.rawLength + inputIds.length - example.inputLength,
      gold: { ...example.gold, variables, text },
      goldLength: tokenizer.encode(text).length,
      meta: { ...example.meta, confusableNames: true },
    },
  };
}
