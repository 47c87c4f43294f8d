/** The repository's data/ folder, found from this module's location (works from src/ and dist/src/). */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | null = null;

export function repoDataDir(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 6; up++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'data'))) {
      cached = join(dir, 'data');
      return cached;
    }
    dir = resolve(dir, '..');
  }
  throw new Error(`cannot find the repository's data/ folder above ${fileURLToPath(import.meta.url)}`);
}
