/**
 * `sparse-frontier inspect --model DIR`: what a checkpoint is (architecture, shape, context length,
 * parameter counts, dtype, layer pattern), without reading any tensor data.
 */
import type { Command } from 'commander';
import { openCheckpointModel } from '../../engine/checkpoint.js';
import { checkpointSummary, formatSummaryTable } from '../../engine/checkpoint-summary.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('Describe a Hugging Face checkpoint directory: architecture, sizes, parameters, dtype, layer pattern')
    .requiredOption('--model <dir>', 'checkpoint directory (config.json, safetensors, tokenizer files)')
    .option('--json', 'print the summary as JSON instead of a table')
    .action((opts: { model: string; json?: boolean }) => {
      const model = openCheckpointModel(opts.model);
      const summary = checkpointSummary(model.config, model.weightDtypes);
      const stop = { stopTokenIds: model.stopTokenIds, stopTokensFrom: model.generation.fromFile ? 'generation_config.json' : 'config.json' };
      if (opts.json) process.stdout.write(`${JSON.stringify({ dir: model.dir, ...summary, ...stop }, null, 2)}\n`);
      else {
        const stopRow: [string, string] = ['stop tokens', `[${stop.stopTokenIds.join(', ')}] (${stop.stopTokensFrom})`];
        process.stdout.write(formatSummaryTable(summary, model.dir, [stopRow]));
      }
    });
}
