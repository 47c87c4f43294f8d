/**
 * Write one tiny checkpoint per golden variant (TINY_VARIANTS in test/helpers/tiny-checkpoint.ts)
 * into a folder, for make_golden.py to run through Python transformers.
 *
 *   npx tsx tools/oracle/write-fixture-checkpoints.ts OUT_DIR
 *
 * Creates OUT_DIR/<variant>/ with config.json, safetensors, tokenizer and generation config files.
 * The files are deterministic: rerunning gives byte-identical weights (the fixtures record their hash).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TINY_VARIANTS, writeTinyCheckpoint } from '../../test/helpers/tiny-checkpoint.js';

function main(argv: string[]): void {
  const [outArg] = argv;
  if (!outArg || outArg.startsWith('-')) {
    process.stderr.write('usage: npx tsx tools/oracle/write-fixture-checkpoints.ts OUT_DIR\n');
    process.exit(2);
  }
  const out = resolve(outArg);
  for (const v of TINY_VARIANTS) {
    const dir = join(out, v.name);
    if (existsSync(dir) && readdirSync(dir).length > 0) {
      process.stderr.write(`refusing to overwrite non-empty ${dir}; pass an empty or new folder\n`);
      process.exit(1);
    }
  }
  for (const v of TINY_VARIANTS) {
    const written = writeTinyCheckpoint(join(out, v.name), v.arch, v.options);
    process.stdout.write(`${v.name.padEnd(20)} ${v.arch.padEnd(8)} ${written.weightFiles.join(', ')}\n`);
  }
  process.stdout.write(`wrote ${TINY_VARIANTS.length} checkpoints under ${out}\n`);
}

main(process.argv.slice(2));
