#!/usr/bin/env node
/**
 * The `sparse-frontier` command line. Each sub-command lives in its own module under commands/ and
 * registers itself on the program; this file only assembles them.
 */
import { Command } from 'commander';
import { commandModules } from './commands/index.js';

const program = new Command();
program
  .name('sparse-frontier')
  .description('Run and measure training-free sparse attention in transformer LLMs')
  .showHelpAfterError();

for (const register of commandModules) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  // Errors from bad input are meant for the user: print the message, not a stack trace.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  if (process.env.SPARSE_FRONTIER_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
