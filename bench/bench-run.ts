/**
 * How a bench starts and ends, shared by the benches instead of a copy in each:
 *   - benchEntry / runIfDirect: the two ways a bench's main(argv) runs (bench/main.ts's suite table,
 *     or `node dist/bench/x.js`), with -h / --help printing the usage and exiting 0;
 *   - RunLedger: the failures and skipped cases of a run, its clock and time budget, printed as they
 *     happen and summed up at the end (printRunEnd), the exit code from the failures;
 *   - pickByIds: a --methods style subset of a registry, unknown ids named;
 *   - writeJsonReport: the --out file.
 * bench/sparse-activations.ts and bench/sparse.ts use all of it.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { BenchArgsError, BenchHelpRequested } from './bench-args.js';

/** A bench's main: argv in, exit code out (void: 0). */
export type BenchMain = (argv: string[]) => number | void | Promise<number | void>;

/**
 * The suite entry bench/main.ts calls: sets process.exitCode from main's result; --help prints the
 * usage. Other errors propagate (bench/main.ts and the CLI print them and exit 1).
 */
export function benchEntry(main: BenchMain): (argv: string[]) => Promise<void> {
  return async (argv) => {
    try {
      process.exitCode = (await main(argv)) ?? 0;
    } catch (e) {
      if (!(e instanceof BenchHelpRequested)) throw e;
      console.log(e.usage);
      process.exitCode = 0;
    }
  };
}

/** Whether the module at `moduleUrl` (its import.meta.url) is the script node was started with. */
export function isDirectRun(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && moduleUrl === pathToFileURL(script).href;
}

/**
 * `node dist/bench/x.js [args]`: runs main on the command line when the module is the script and
 * exits with its code; --help prints the usage (exit 0); a bad command line prints its message, any
 * other error its stack (exit 1).
 */
export function runIfDirect(moduleUrl: string, main: BenchMain): void {
  if (!isDirectRun(moduleUrl)) return;
  const done = (code: number | void) => process.exit(code ?? 0);
  const failed = (e: unknown) => {
    if (e instanceof BenchHelpRequested) {
      console.log(e.usage);
      process.exit(0);
    }
    // A bad command line needs its message, not a stack.
    console.error(e instanceof BenchArgsError ? e.message : e instanceof Error ? e.stack ?? e.message : e);
    process.exit(1);
  };
  try {
    Promise.resolve(main(process.argv.slice(2))).then(done, failed);
  } catch (e) {
    failed(e);
  }
}

/**
 * A run's failures and skipped cases, each printed when it happens (FAILED … / skip …), and its
 * clock against the time budget. S: what a skipped case records (a line, or a structured row).
 */
export class RunLedger<S = string> {
  readonly failures: string[] = [];
  readonly skipped: S[] = [];
  private readonly t0 = performance.now();

  /** timeBudgetS: seconds after which overBudget() says to skip what is left. */
  constructor(readonly timeBudgetS: number = Infinity) {}

  get elapsedS(): number {
    return (performance.now() - this.t0) / 1000;
  }

  overBudget(): boolean {
    return this.elapsedS > this.timeBudgetS;
  }

  /** The reason a case past the budget is skipped. */
  get budgetReason(): string {
    return `time budget of ${this.timeBudgetS} s spent`;
  }

  fail(what: string, e: unknown): void {
    const message = `${what}: ${e instanceof Error ? e.message : String(e)}`;
    this.failures.push(message);
    console.log(`FAILED ${message}`);
  }

  /** Records a skipped case; `line` (default the entry itself) is printed after "skip ". */
  skip(entry: S, line: string = String(entry)): void {
    this.skipped.push(entry);
    console.log(`skip ${line}`);
  }

  /** 1 when anything failed, else 0. */
  get exitCode(): number {
    return this.failures.length ? 1 : 0;
  }
}

/**
 * The end of a run's output: the result table, the skipped cases on one line, the failures one per
 * line, then `closing` (e.g. "total 93.1 s").
 */
export function printRunEnd<S>(ledger: RunLedger<S>, table: string, closing: string, skippedText: (s: S) => string = String): void {
  console.log(`\n${table}\n`);
  if (ledger.skipped.length) console.log(`skipped: ${ledger.skipped.map(skippedText).join('; ')}`);
  if (ledger.failures.length) console.log(`failures:\n  ${ledger.failures.join('\n  ')}`);
  console.log(closing);
}

/**
 * The entries of `available` whose id is in `wanted`, in the registry's order (all when wanted is
 * null); an id none has is refused: "--methods: no GPU prefill method x (GPU prefill methods: a, b)".
 */
export function pickByIds<E>(available: readonly E[], wanted: readonly string[] | null, idOf: (e: E) => string, names: { flag: string; missing: string; known: string }): E[] {
  if (!wanted) return [...available];
  const ids = available.map(idOf);
  const unknown = wanted.filter((w) => !ids.includes(w));
  if (unknown.length) throw new Error(`${names.flag}: ${names.missing} ${unknown.join(', ')} (${names.known}: ${ids.join(', ')})`);
  return available.filter((e) => wanted.includes(idOf(e)));
}

/** Writes the JSON report to `out` (nothing when null: no --out given). */
export function writeJsonReport(out: string | null, report: unknown): void {
  if (out) writeFileSync(out, JSON.stringify(report, null, 2));
}
