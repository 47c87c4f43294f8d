/** Where the shipped model organism lives (models/organism) and its golden fixture. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above test/organism');
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = repoRoot();
export const ORGANISM_DIR = join(REPO_ROOT, 'models', 'organism');
/** Written by tools/oracle/make_golden.py (transformers' logits of the shipped checkpoint). */
export const ORGANISM_GOLDEN = join(REPO_ROOT, 'test', 'organism', 'organism.json');
