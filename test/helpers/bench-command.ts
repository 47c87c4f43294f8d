/**
 * Runs `sparse-frontier bench ...args` in-process (commander, exit overridden) and returns what the
 * suite printed with console.log, for the CLI tests of the bench suites.
 */
import { Command } from 'commander';
import { registerBench } from '../../src/cli/commands/bench.js';

export async function runBenchCommand(...args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerBench(program);
  const lines: string[] = [];
  const original = console.log;
  console.log = (...parts: unknown[]) => void lines.push(parts.map(String).join(' '));
  try {
    await program.parseAsync(['bench', ...args], { from: 'user' });
  } finally {
    console.log = original;
  }
  return lines.join('\n');
}
