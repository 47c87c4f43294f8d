/** WAT → wasm with wabt (a dev dependency: only the generator script and a drift test use it). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

export async function assembleWat(source: string, name: string): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const features = { simd: true, threads: true };
  const mod = wabt.parseWat(name, source, features);
  try {
    // wabt validates with its default features unless given them (its .d.ts omits the parameter).
    (mod as unknown as { validate(features: object): void }).validate(features);
    return new Uint8Array(mod.toBinary({ log: false, write_debug_names: false }).buffer);
  } finally {
    mod.destroy();
  }
}

/** The repository root (the folder holding package.json), from this file's location (src or dist). */
export function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}
