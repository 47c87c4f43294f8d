/**
 * The GPU machine runs dist/test/cuda/ with the runtime bundle only (tools/device/prepare.sh: no dev
 * dependencies, no npm there). A GPU test file that reaches a dev dependency (fast-check, tsx, a tokenizer
 * package) fails to load on the device although it passes here, as one did in session 9. This walks every
 * file the GPU suite loads, through relative imports, and names any package outside package.json's
 * `dependencies`.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root from test/cuda (source) or dist/test/cuda (compiled). */
const root = existsSync(join(here, '..', '..', 'package.json')) ? resolve(here, '..', '..') : resolve(here, '..', '..', '..');
const IMPORT_PATTERN = /(?:^|\n)\s*(?:import|export)[^'";]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The TypeScript source of a module named as `.js` in an import. */
function sourceOf(fromFile: string, specifier: string): string | undefined {
  const target = resolve(dirname(fromFile), specifier);
  for (const candidate of [target.replace(/\.js$/, '.ts'), target, `${target}.ts`]) if (existsSync(candidate)) return candidate;
  return undefined;
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

test('GPU test files import only Node built-ins, runtime dependencies and repository modules', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const allowed = new Set(Object.keys(pkg.dependencies ?? {}));
  const builtins = new Set(builtinModules);
  const cudaTests = join(root, 'test', 'cuda');
  const queue = readdirSync(cudaTests).filter((f) => f.endsWith('.ts')).map((f) => join(cudaTests, f));
  assert.ok(queue.length > 50, `expected the GPU suite's sources under ${cudaTests}`);
  const seen = new Set<string>();
  const offenders: string[] = [];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(IMPORT_PATTERN)) {
      const specifier = match[1] ?? match[2];
      if (specifier.startsWith('.')) {
        const source = sourceOf(file, specifier);
        if (source !== undefined) queue.push(source);
        continue;
      }
      const name = specifier.startsWith('node:') ? specifier : packageName(specifier);
      if (name.startsWith('node:') || builtins.has(name) || allowed.has(name)) continue;
      offenders.push(`${relative(root, file)} imports '${specifier}'`);
    }
  }
  assert.deepEqual(offenders, [], `not in the GPU machine's bundle (move the test out of test/cuda, or make the package a runtime dependency):\n${offenders.join('\n')}`);
});
