/**
 * bench/bench-args.ts: typed values from an option table, the messages for bad input (each naming the
 * option), the usage text generated from the table, and bench/bench-run.ts's entry and run tail.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BenchArgsError, BenchHelpRequested, choice, defineBenchArgs, flag, int, intList, labels, list, num, numList, ruleText, sparsityList, text,
} from '../../bench/bench-args.js';
import { RunLedger, benchEntry, pickByIds, printRunEnd } from '../../bench/bench-run.js';

const args = defineBenchArgs('bench demo', 'A demonstration bench.', {
  lengths: intList({ describe: 'prompt lengths', default: [4096, 16384], atLeast: 64, noun: 'length', none: true }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.5, 0.9] }),
  'l2-mb': numList({ describe: 'cache sizes', default: [50, 25], above: 0, noun: 'size in MB' }),
  repeats: int({ describe: 'timed calls', default: 5, atLeast: 1, noun: 'repeat count' }),
  warmup: num({ describe: 'seconds of warm-up', default: 1.5, atLeast: 0, noun: 'number of seconds' }),
  variants: labels({ describe: 'variants to time (default all)' }),
  phases: labels({ describe: 'phases', choices: ['prefill', 'decode'], default: ['prefill', 'decode'] }),
  kernel: choice({ describe: 'matmul kernel', choices: ['auto', 'js-blocked'], default: 'auto' }),
  shapes: list({ describe: 'shapes', default: [[1, 2]], item: (s) => {
    const parts = s.split('x').map(Number);
    if (parts.length !== 2) throw new Error(`shape "${s}": two numbers joined by x`);
    return parts;
  } }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
  model: text({ describe: 'checkpoint', default: 'models/organism' }),
  'skip-matmul': flag('skip the matmul table'),
});

const bad = (argv: string[], message: RegExp) => assert.throws(() => args.parse(argv), (e: Error) => e instanceof BenchArgsError && message.test(e.message));

describe('bench-args: values', () => {
  test('defaults, camel-cased fields, types', () => {
    const o = args.parse([]);
    assert.deepEqual({ ...o }, {
      lengths: [4096, 16384], sparsities: [0.5, 0.9], l2Mb: [50, 25], repeats: 5, warmup: 1.5, variants: null, phases: ['prefill', 'decode'],
      kernel: 'auto', shapes: [[1, 2]], out: null, model: 'models/organism', skipMatmul: false,
    });
    // Compile-time types: a number[] is not nullable, text without a default is.
    const lengths: number[] = o.lengths, out: string | null = o.out, kernel: 'auto' | 'js-blocked' = o.kernel;
    assert.ok(lengths && out === null && kernel);
  });
  test('every kind from the next argument or --name=value; the last of a repeated option wins', () => {
    const o = args.parse(['--lengths', '64,128', '--sparsities=0,0.95', '--l2-mb', '12.5', '--repeats', '2', '--repeats', '3', '--warmup', '0',
      '--variants', 'a,,b', '--phases', 'decode', '--kernel', 'js-blocked', '--shapes', '3x4,5x6', '--out', 'r.json', '--model', 'm', '--skip-matmul']);
    assert.deepEqual({ ...o }, {
      lengths: [64, 128], sparsities: [0, 0.95], l2Mb: [12.5], repeats: 3, warmup: 0, variants: ['a', 'b'], phases: ['decode'],
      kernel: 'js-blocked', shapes: [[3, 4], [5, 6]], out: 'r.json', model: 'm', skipMatmul: true,
    });
  });
  test("'none' is the empty list where the option allows it", () => {
    assert.deepEqual(args.parse(['--lengths', 'none']).lengths, []);
  });
  test('the names of the options given', () => {
    assert.deepEqual([...args.parseWithPresence(['--repeats', '2', '--skip-matmul']).given].sort(), ['repeats', 'skip-matmul']);
  });
  test('a value is the next argument even when it starts with a dash (then it is a bad value, as before)', () => {
    bad(['--lengths', '--repeats', '2'], /^--lengths: bad length \(an integer >= 64\) "--repeats"$/);
    assert.equal(args.parse(['--model', '-m']).model, '-m');
  });
});

describe('bench-args: errors name the option', () => {
  test('bad numbers: blank, not a number, not an integer, out of bounds', () => {
    bad(['--lengths', '64,'], /^--lengths: bad length \(an integer >= 64\) ""$/);
    bad(['--lengths', '64,abc'], /--lengths: bad length .* "abc"/);
    bad(['--lengths', '100.5'], /"100\.5"/);
    bad(['--lengths', '32'], /"32"/);
    bad(['--sparsities', '0.5,1'], /^--sparsities: bad sparsity \(in \[0, 1\)\) "1"$/);
    bad(['--sparsities', '-0.1'], /bad sparsity/);
    bad(['--l2-mb', '0'], /^--l2-mb: bad size in MB \(> 0\) "0"$/);
    bad(['--repeats', '0'], /^--repeats: bad repeat count \(an integer >= 1\) "0"$/);
    bad(['--warmup', 'NaN'], /--warmup: bad number of seconds \(>= 0\) "NaN"/);
    bad(['--warmup', 'Infinity'], /--warmup: bad number/);
  });
  test('a number from a set', () => {
    const chunk = defineBenchArgs('x', '', { chunk: int({ describe: 'chunk size', default: 16, oneOf: [16, 64], noun: 'chunk size' }) });
    assert.equal(chunk.parse(['--chunk', '64']).chunk, 64);
    assert.throws(() => chunk.parse(['--chunk', '32']), /^BenchArgsError: --chunk: bad chunk size \(16 or 64\) "32"$/);
    const chunks = defineBenchArgs('x', '', { chunks: intList({ describe: 'chunk sizes', default: [16], multipleOf: 16, noun: 'chunk size' }) });
    assert.deepEqual(chunks.parse(['--chunks', '16,64,128']).chunks, [16, 64, 128]);
    for (const bad of ['24', '0', '-16']) {
      assert.throws(() => chunks.parse(['--chunks', bad]), new RegExp(`^BenchArgsError: --chunks: bad chunk size \\(a multiple of 16\\) "${bad}"$`));
    }
  });
  test('missing value, a value given to a flag', () => {
    bad(['--repeats'], /^--repeats needs a value$/);
    bad(['--skip-matmul=yes'], /^--skip-matmul takes no value \(got "yes"\)$/);
  });
  test('unknown options and stray arguments name the bench and list the options', () => {
    bad(['--fast'], /^bench demo: unknown argument --fast \(options: --lengths, .*--skip-matmul; --help describes them\)$/);
    bad(['4096'], /bench demo: unknown argument 4096/);
    bad(['-x'], /bench demo: unknown argument -x/);
    bad(['--', '--lengths', '64'], /bench demo: unknown argument --/);
  });
  test('choices and labels', () => {
    bad(['--phases', 'both'], /^--phases: "both" is not prefill or decode$/);
    bad(['--kernel', 'wasm'], /^--kernel: "wasm" is not auto or js-blocked$/);
    bad(['--variants', ','], /^--variants: an empty list$/);
  });
  test("a list item's own message, prefixed with the option (once)", () => {
    bad(['--shapes', '3x4,5'], /^--shapes: shape "5": two numbers joined by x$/);
    const named = defineBenchArgs('x', '', { variants: list({ describe: 'variants', item: (v) => {
      if (v !== 'auto') throw new Error(`--variants: unknown variant ${v}`);
      return v;
    } }) });
    assert.equal(named.parse([]).variants, null);
    assert.throws(() => named.parse(['--variants', 'auto,v9']), /^BenchArgsError: --variants: unknown variant v9$/);
  });
  test('a required option', () => {
    const req = defineBenchArgs('oracle', '', { out: text({ describe: 'folder', placeholder: 'DIR', required: true }) });
    assert.throws(() => req.parse([]), /^BenchArgsError: oracle: --out DIR is required$/);
    assert.equal(req.parse(['--out', 'd']).out, 'd');
  });
  test('a table may not take --help or a name that is not dashed lower-case words', () => {
    assert.throws(() => defineBenchArgs('x', '', { help: flag('mine') }), /--help is every bench's own/);
    assert.throws(() => defineBenchArgs('x', '', { decodeSteps: int({ describe: 'd', default: 1 }) }), /not lower-case words/);
  });
});

describe('bench-args: --help', () => {
  test('-h or --help anywhere on the line, even beside a bad value, asks for the usage', () => {
    for (const argv of [['--help'], ['-h'], ['--lengths', 'x', '--help']]) {
      assert.throws(() => args.parse(argv), (e: Error) => e instanceof BenchHelpRequested && e.usage === args.usage());
    }
  });
  test('the usage text: one line per option with its placeholder, description and default', () => {
    const lines = args.usage().split('\n');
    assert.equal(lines[0], 'usage: bench demo [options]');
    assert.equal(lines[1], 'A demonstration bench.');
    const line = (name: string) => lines.find((l) => l.trimStart().startsWith(`--${name} `) || l.trim() === `--${name}` || l.trimStart().startsWith(`--${name}  `));
    assert.match(line('lengths') ?? '', /^ {2}--lengths N,\.\.\.\|none +prompt lengths \[default 4096,16384\]$/);
    assert.match(line('sparsities') ?? '', /--sparsities S,\.\.\. +target sparsities \[default 0\.5,0\.9\]$/);
    assert.match(line('phases') ?? '', /--phases prefill\|decode,\.\.\. +phases \[default prefill,decode\]$/);
    assert.match(line('out') ?? '', /--out FILE +JSON report$/);
    assert.match(line('skip-matmul') ?? '', /--skip-matmul +skip the matmul table$/);
    assert.match(lines[lines.length - 1], /^ {2}-h, --help +print this and exit$/);
    // Descriptions start in one column.
    const columns = new Set(lines.slice(3).map((l) => /^ {2}\S.*? {2,}(?=\S)/.exec(l)?.[0].length));
    // The widest head is --phases prefill|decode,...; two spaces either side.
    assert.deepEqual([...columns], [2 + '--phases prefill|decode,...'.length + 2]);
  });
  test('rule texts', () => {
    assert.equal(ruleText({ integer: true, atLeast: 1 }), 'an integer >= 1');
    assert.equal(ruleText({ integer: false, atLeast: 0, below: 1 }), 'in [0, 1)');
    assert.equal(ruleText({ integer: false, above: 0 }), '> 0');
    assert.equal(ruleText({ integer: true }), 'an integer');
    assert.equal(ruleText({ integer: false }), 'a number');
    assert.equal(ruleText({ integer: true, atLeast: 1, atMost: 8 }), 'an integer in [1, 8]');
    assert.equal(ruleText({ integer: true, oneOf: [16, 64] }), '16 or 64');
    assert.equal(ruleText({ integer: true, multipleOf: 16 }), 'a multiple of 16');
  });
});

describe('bench-run', () => {
  const capture = async (fn: () => Promise<void> | void): Promise<string[]> => {
    const lines: string[] = [];
    const original = console.log;
    console.log = (...parts: unknown[]) => void lines.push(parts.map(String).join(' '));
    try {
      await fn();
    } finally {
      console.log = original;
    }
    return lines;
  };

  test('benchEntry: exit code from main, --help prints the usage (exit code 0), other errors propagate', async () => {
    const before = process.exitCode;
    try {
      const entry = benchEntry((argv) => (args.parse(argv).repeats === 7 ? 1 : 0));
      await capture(() => entry(['--repeats', '7']));
      assert.equal(process.exitCode, 1);
      const out = await capture(() => entry(['--help']));
      assert.equal(process.exitCode, 0);
      assert.equal(out.join('\n'), args.usage());
      await assert.rejects(entry(['--repeats', 'x']), /--repeats: bad repeat count/);
    } finally {
      process.exitCode = before;
    }
  });

  test('RunLedger: failures and skips printed as they happen and summed up at the end; exit code from the failures', async () => {
    const ledger = new RunLedger<{ n: number; reason: string }>(Infinity);
    const out = await capture(() => {
      ledger.skip({ n: 1024, reason: 'no memory' }, 'n=1024: no memory');
      assert.equal(ledger.exitCode, 0);
      ledger.fail('prefill quest n=1024', new Error('launch failed'));
      printRunEnd(ledger, '| table |', 'total 1.0 s', (s) => `n=${s.n} (${s.reason})`);
    });
    assert.deepEqual(out, [
      'skip n=1024: no memory', 'FAILED prefill quest n=1024: launch failed', '\n| table |\n', 'skipped: n=1024 (no memory)',
      'failures:\n  prefill quest n=1024: launch failed', 'total 1.0 s',
    ]);
    assert.equal(ledger.exitCode, 1);
    assert.equal(ledger.overBudget(), false);
    assert.equal(new RunLedger(-1).overBudget(), true);
    assert.equal(new RunLedger(30).budgetReason, 'time budget of 30 s spent');
  });

  test('pickByIds: the registry order, all when none asked for, unknown ids named with the known ones', () => {
    const registry = [{ id: 'dense' }, { id: 'quest' }, { id: 'snapkv' }];
    const names = { flag: '--methods', missing: 'no GPU method', known: 'GPU methods' };
    assert.deepEqual(pickByIds(registry, ['snapkv', 'dense'], (e) => e.id, names).map((e) => e.id), ['dense', 'snapkv']);
    assert.equal(pickByIds(registry, null, (e) => e.id, names).length, 3);
    assert.throws(() => pickByIds(registry, ['quest', 'flex'], (e) => e.id, names), /^Error: --methods: no GPU method flex \(GPU methods: dense, quest, snapkv\)$/);
  });
});
