/**
 * Reading kernel sources as text in host tests: cutting a device function out of a .cu for a g++
 * harness or a pattern check, and the parameter kinds of an entry point to hold a launcher's argument
 * list against. Also where the g++ harnesses live and whether g++ is there to build them, and the nvcc
 * compile check every kernel variant is held to.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../helpers/repo-root.js';

/**
 * The text of the device function `name` in a .cu source: its signature line (with a `template <…>`
 * line right above it) to its closing brace at column 0.
 */
export function deviceFunctionText(source: string, name: string): string {
  const at = source.search(new RegExp(`^(template <[^\\n]*>\\n)?__device__[^\\n]*\\b${name}\\(`, 'm'));
  if (at < 0) throw new Error(`no device function ${name} in the source`);
  const end = source.indexOf('\n}\n', at);
  if (end < 0) throw new Error(`device function ${name} has no closing brace at column 0`);
  return source.slice(at, end + 3);
}

/**
 * The kinds of the parameters of `extern "C" __global__` entry `name` ('ptr' for a pointer, 'i32' for an
 * int, 'unknown: …' otherwise), or null when the source has no such entry. Entries may be written out
 * or defined by a macro whose first parameter names them: `#define M(P, ...)` whose body declares
 * `base##P(…)` or `P(…)`, invoked as `M(arg, …)` at the start of a line (quest.cu's QUEST_GRID_STEP_ENTRIES,
 * QUEST_GRID_SELECT_ENTRY).
 */
export function entryParameterKinds(source: string, name: string): string[] | null {
  const params = entryParameters(source, name);
  if (params === null) return null;
  return params.split(',').map((param) => (param.includes('*') ? 'ptr' : /\bint\s+\w+\s*$/.test(param.trim()) ? 'i32' : `unknown: ${param.trim()}`));
}

const ENTRY = String.raw`extern "C" __global__ void __launch_bounds__\([^)]*\) `;

function entryParameters(source: string, name: string): string | null {
  const written = source.match(new RegExp(`${ENTRY}${name}\\(([^)]*)\\)`));
  if (written) return written[1]!;
  for (const def of source.matchAll(/^#define (\w+)\((\w+), [^)]*\)((?:[^\n]*\\\n)*[^\n]*)/gm)) {
    const [, macro, param, body] = def as unknown as [string, string, string, string];
    const flat = body.replace(/\\\n/g, ' ');
    for (const entry of flat.matchAll(new RegExp(`${ENTRY}(?:(\\w+)##)?${param}\\(([^)]*)\\)`, 'g'))) {
      const [, base = '', entryParams] = entry as unknown as [string, string | undefined, string];
      for (const call of source.matchAll(new RegExp(`^${macro}\\((\\w*),`, 'gm'))) {
        if (base + call[1] === name) return entryParams;
      }
    }
  }
  return null;
}

/** A g++ harness source in test/cuda (found from dist/test/cuda as well). */
export function hostHarnessPath(fileName: string): string {
  return join(REPO_ROOT, 'test', 'cuda', fileName);
}

/** Whether nvcc runs here (the kernel compile checks skip where it does not). */
export function nvccPresent(): boolean {
  try {
    execFileSync('nvcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why a g++ harness cannot be built here, or null when g++ runs. */
export function gppProblem(): string | null {
  try {
    execFileSync('g++', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'g++ not found on PATH';
  }
  return null;
}

const runAsync = promisify(execFile);

/**
 * nvcc's arguments for one cubin of `path` with `defines` (the compile checks' command; tools/cubin-compare
 * compiles both sides of a refactor with it). sm_90a goes through -gencode: the -arch=sm_90a shorthand also
 * runs a plain sm_90 pass that rejects wgmma.
 */
export function cubinNvccArgs(
  path: string, out: string, defines: Record<string, number>, options: { arch?: 'sm_90' | 'sm_90a'; extra?: readonly string[] } = {},
): string[] {
  const target = (options.arch ?? 'sm_90a') === 'sm_90a' ? ['-gencode=arch=compute_90a,code=sm_90a'] : ['-arch=sm_90'];
  return [...target, '--cubin', ...(options.extra ?? []), '-o', out, path, ...Object.entries(defines).map(([k, x]) => `-D${k}=${x}`)];
}

/**
 * Writes `source` to `path`, compiles it with nvcc and `defines` to a cubin, and fails on anything but a
 * clean ptxas report for `label`: register spills, a stack frame (unless `allowStack`), warnings, or a
 * serialised wgmma chain (ptxas reports that, C7514/C7515/C7520, as info, not as a warning).
 */
export async function assertCompilesClean(
  path: string, source: string, defines: Record<string, number>, label: string,
  options: { arch?: 'sm_90' | 'sm_90a'; allowStack?: boolean } = {},
): Promise<void> {
  writeFileSync(path, source);
  const args = cubinNvccArgs(path, `${path}.cubin`, defines, { arch: options.arch, extra: ['-Xptxas', '-v'] });
  const { stderr } = await runAsync('nvcc', args, { maxBuffer: 1 << 20 });
  const spills = [...stderr.matchAll(/(\d+) bytes spill stores, (\d+) bytes spill loads/g)];
  assert.ok(spills.length > 0, `no resource report in:\n${stderr}`);
  for (const m of spills) assert.equal(m[1], '0', `register spills in ${label}:\n${stderr}`);
  if (!options.allowStack) {
    for (const m of stderr.matchAll(/(\d+) bytes stack frame/g)) assert.equal(m[1], '0', `stack frame in ${label}:\n${stderr}`);
  }
  assert.ok(!/warning/i.test(stderr), `warnings in ${label}:\n${stderr}`);
  assert.ok(!/Potential Performance Loss/.test(stderr), `wgmma serialised in ${label}:\n${stderr}`);
}
