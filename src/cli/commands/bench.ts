/**
 * `sparse-frontier bench cpu|attention|model|decode-step-breakdown|sparse|sparse-activations|cold-compile [options]`: the benchmarks of `npm run bench -- …`,
 * from the installed command. The suites live in bench/ (compiled to dist/bench); they are imported
 * only when this command runs, and the GPU suites import the CUDA modules only when chosen, so other
 * commands and `bench cpu` never load the driver bindings. On a machine without a usable GPU the GPU
 * suites print why they skipped and exit 0. Options after the suite name go to the suite unchanged
 * (e.g. `bench cpu --quick`, `bench attention --repeats 5`), -h / --help included: the suite prints
 * the usage its own option table (bench/<suite>.ts's *_ARGS) generates, so the options are written down
 * once. Commander's help is only the command's own: `bench --help` (no suite), which lists the suites.
 */
import type { Command } from 'commander';

/** Suite names, for the help text (bench/main.ts holds the table itself). */
export const BENCH_SUITE_NAMES = ['cpu', 'attention', 'model', 'decode-step-breakdown', 'sparse', 'sparse-activations', 'cold-compile'] as const;

const HELP_FLAGS: readonly string[] = ['-h', '--help'];

/** Loads bench/main.ts's dispatch lazily (dist/src/cli/commands → dist/bench). */
export async function runBenchSuite(suite: string | undefined, args: string[]): Promise<void> {
  const { runBench } = await import('../../../bench/main.js');
  await runBench(suite, args);
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(`Run a benchmark suite (${BENCH_SUITE_NAMES.join(', ')}); GPU suites skip with the reason where there is no GPU`)
    .usage('<suite> [options...] | --help')
    .argument('[suite]', `${BENCH_SUITE_NAMES.join(' | ')}`)
    .argument('[options...]', 'passed to the suite; `bench <suite> --help` lists them')
    // The suites parse their own options, -h / --help too: commander hands everything over untouched.
    .allowUnknownOption()
    .helpOption(false)
    .addHelpText('after', `\nOptions:\n  -h, --help  show this help; after a suite name, that suite's options\n\n` +
      `Examples:\n  sparse-frontier bench cpu --quick\n  sparse-frontier bench sparse --help`)
    .action(async (suite: string | undefined, options: string[], _opts: unknown, command: Command) => {
      if (suite !== undefined && HELP_FLAGS.includes(suite)) {
        command.outputHelp();
        return;
      }
      // No suite: bench/main.ts's error names the known ones.
      await runBenchSuite(suite, options);
    });
}
