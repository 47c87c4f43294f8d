/**
 * `sparse-frontier bench cpu|attention|model|sparse|sparse-activations [options]`: the benchmarks of `npm run bench -- …`,
 * from the installed command. The suites live in bench/ (compiled to dist/bench); they are imported
 * only when this command runs, and the GPU suites import the CUDA modules only when chosen, so other
 * commands and `bench cpu` never load the driver bindings. On a machine without a usable GPU the GPU
 * suites print why they skipped and exit 0. Options after the suite name go to the suite unchanged
 * (e.g. `bench cpu --quick`, `bench attention --repeats 5`).
 */
import type { Command } from 'commander';

/** Suite names, for the help text (bench/main.ts holds the table itself). */
export const BENCH_SUITE_NAMES = ['cpu', 'attention', 'model', 'sparse', 'sparse-activations'] as const;

/** Loads bench/main.ts's dispatch lazily (dist/src/cli/commands → dist/bench). */
export async function runBenchSuite(suite: string, args: string[]): Promise<void> {
  const { runBench } = await import('../../../bench/main.js');
  await runBench(suite, args);
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(`Run a benchmark suite (${BENCH_SUITE_NAMES.join(', ')}); GPU suites skip with the reason where there is no GPU`)
    .argument('<suite>', `${BENCH_SUITE_NAMES.join(' | ')}`)
    .argument('[options...]', 'passed to the suite: cpu [--quick] [--lengths 256,1024] [--decode-steps N] [--kernel K] [--skip-matmul]; sparse [--lengths 16384,32768] [--sparsities 0.5,0.9] [--methods a,b] [--phases prefill,decode] [--repeats N] [--time-budget S] [--out FILE]; sparse-activations [--model DIR] [--tasks niah,vt] [--lengths 4096,16384] [--sparsities 0.5,0.9] [--replicate R]; attention/model: see bench/*.ts')
    // The suites parse their own options; commander must hand them over untouched.
    .allowUnknownOption()
    .helpOption('-h, --help', 'show this help (suite options: see the argument list)')
    .action(async (suite: string, options: string[]) => {
      await runBenchSuite(suite, options);
    });
}
