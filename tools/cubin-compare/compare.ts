/**
 * Proof that a kernel refactor changed no machine code: compiles a kernel source as it was at a git ref
 * ("before") and as it is now ("after": the working tree, or a second ref) for every define set the
 * compile tests compile, with the compile tests' own nvcc command (assertCompilesClean in
 * test/cuda/kernel-source-text.ts: -gencode=arch=compute_90a,code=sm_90a --cubin, -D defines, local
 * headers inlined as readKernelSource does), and compares the two cubins byte for byte.
 *
 *   npx tsx tools/cubin-compare/compare.ts [--base REF] [--after REF | --after-dir DIR] [--files a.cu,b.cu] [--keep DIR] [--lineinfo]
 *
 * --base: the ref before the refactor (default HEAD); --after: a ref instead of the working tree;
 * --after-dir: a folder whose .cu / .cuh files stand in for the working tree's (others read from the tree),
 * to try a change on a copy without touching the checkout;
 * --files: kernel sources (default: every .cu that a compile test lists); --keep: where to leave the
 * cubins of the define sets that differ (before-*.cubin, after-*.cubin, for cuobjdump / nvdisasm on a
 * machine that has them). Prints one line per define set and exits 1 when any differs or fails to compile.
 *
 * The define sets are read from the compile tests themselves, so the proof covers what they compile:
 * kernels-compile.test.ts's VARIANTS entries, sink-local-compile.test.ts's FLAGS on its base defines,
 * and block-sparse-wgmma-ablation-compile.test.ts's labels at both head dims (through the launcher's own
 * label parser). A test rewritten so that its lists cannot be read here fails this script loudly.
 * Without -lineinfo, as the tests compile. --lineinfo adds it, as the runtime's NVRTC compile does; its line
 * table moves with any edit of the source text, so then the ELF sections that hold code and launch data
 * (.text.*, .nv.info*, .nv.constant*) are compared instead of the whole file.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseBlockSparseWgmmaLabel, wgmmaAblationDefines } from '../../src/backends/cuda/kernels/block-sparse-prefill-wgmma.js';
import { BLOCK_SPARSE_ABLATION_LABELS } from '../../test/cuda/block-sparse-ablation-labels.js';
import { cubinNvccArgs } from '../../test/cuda/kernel-source-text.js';

const REPO = join(import.meta.dirname, '..', '..');
const KERNELS = 'src/backends/cuda/kernels';
const TESTS = join(REPO, 'test', 'cuda');

type Defines = Record<string, number>;
interface DefineSet { file: string; defines: Defines; from: string }

/** `{ HEAD_DIM: 128, BLOCK_N: 64 }` (integer values only, as the compile tests write them). */
function objectLiteral(text: string, where: string): Defines {
  const body = text.trim().replace(/^\{|\}$/g, '').trim();
  if (body === '') return {};
  const out: Defines = {};
  for (const part of body.split(',')) {
    const m = /^\s*(\w+)\s*:\s*(-?\d+)\s*$/.exec(part);
    if (!m) throw new Error(`${where}: cannot read "${part.trim()}" in ${text} (integer defines only)`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

function testText(name: string): string {
  return readFileSync(join(TESTS, name), 'utf8');
}

/** kernels-compile.test.ts: its `{ file: 'x.cu', defines: { … } … }` entries. */
function kernelsCompileSets(): DefineSet[] {
  const name = 'kernels-compile.test.ts';
  const sets = [...testText(name).matchAll(/\{ file: '([\w.-]+\.cu)', defines: (\{[^}]*\})/g)]
    .map((m) => ({ file: m[1], defines: objectLiteral(m[2], name), from: name }));
  if (sets.length < 50) throw new Error(`${name}: read only ${sets.length} variants; has its VARIANTS list changed form?`);
  return sets;
}

/** sink-local-compile.test.ts: each FLAGS entry spread over the base defines its VARIANTS map writes. */
function sinkLocalSets(): DefineSet[] {
  const name = 'sink-local-compile.test.ts';
  const text = testText(name);
  const flags = /const FLAGS[^=]*= \[([\s\S]*?)\];/.exec(text);
  const base = /\(\{\s*HEAD_DIM, ([\w\s:,]*?), \.\.\.flags,\s*\}\)/.exec(text);
  if (!flags || !base) throw new Error(`${name}: FLAGS or the base defines of VARIANTS not found; has the test changed form?`);
  const baseDefines = objectLiteral(`{${base[1]}}`, name);
  const sets = [...flags[1].matchAll(/\{[^}]*\}/g)].map((m) => {
    const { HEAD_DIM, ...rest } = objectLiteral(m[0], name);
    if (HEAD_DIM === undefined) throw new Error(`${name}: a FLAGS entry without HEAD_DIM: ${m[0]}`);
    return { file: 'flash-prefill-wgmma.cu', defines: { HEAD_DIM, ...baseDefines, ...rest }, from: name };
  });
  if (!sets.length) throw new Error(`${name}: no FLAGS entries read`);
  return sets;
}

/** block-sparse-wgmma-ablation-compile.test.ts: its labels (the shared list and its own extras) at D = 128 and 64. */
function blockSparseAblationSets(): DefineSet[] {
  const name = 'block-sparse-wgmma-ablation-compile.test.ts';
  const labelsText = /const LABELS = \[([\s\S]*?)\];/.exec(testText(name));
  if (!labelsText || !labelsText[1].includes('...BLOCK_SPARSE_ABLATION_LABELS')) throw new Error(`${name}: LABELS not found; has the test changed form?`);
  const extras = [...labelsText[1].matchAll(/'(wgmma-[\w-]+)'/g)].map((m) => m[1]);
  const sets: DefineSet[] = [];
  for (const label of [...BLOCK_SPARSE_ABLATION_LABELS, ...extras]) {
    const t = parseBlockSparseWgmmaLabel(label);
    if (!t) throw new Error(`${name}: ${label} is not a wgmma label`);
    for (const headDim of [128, 64]) {
      sets.push({
        file: 'block-sparse-prefill-wgmma.cu', from: `${name} ${label}`,
        defines: { HEAD_DIM: headDim, BLOCK_N: t.blockN, KV_STAGES: t.stages, CONSUMERS: t.consumers, ...(t.ctaOrder === 'kv' ? { CTA_ORDER: 1 } : {}), ...wgmmaAblationDefines(t) },
      });
    }
  }
  return sets;
}

/** Every define set the compile tests compile, sm_90a kernels only (the wgmma ones this proof is for), without repeats. */
function compileTestDefineSets(): DefineSet[] {
  const seen = new Set<string>();
  const out: DefineSet[] = [];
  for (const s of [...kernelsCompileSets(), ...sinkLocalSets(), ...blockSparseAblationSets()]) {
    const key = `${s.file} ${JSON.stringify(s.defines)}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(s);
    }
  }
  return out;
}

/** Where a side's kernel files come from: a git ref, or the working tree with a folder's files in front. */
type Side = { ref: string } | { dir: string | null };

/** A file of the kernels folder on one side. */
function kernelFile(side: Side, name: string): string {
  if (!('ref' in side)) {
    const own = side.dir !== null ? join(side.dir, name) : null;
    return readFileSync(own !== null && existsSync(own) ? own : join(REPO, KERNELS, name), 'utf8');
  }
  const ref = side.ref;
  return execFileSync('git', ['show', `${ref}:${KERNELS}/${name}`], { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 26 });
}

/** The source as NVRTC gets it: local `#include "x.cuh"` lines replaced by the header (readKernelSource's rule). */
function kernelSource(side: Side, name: string): string {
  return kernelFile(side, name).replace(/^#include "([\w.-]+\.cuh)"[ \t]*$/gm, (_line, header: string) =>
    kernelFile(side, header).replace(/^#pragma once[ \t]*$/m, ''));
}

/** assertCompilesClean's nvcc command (with -lineinfo when asked); the same path for both sides, so nothing but the source differs. */
function compile(dir: string, source: string, defines: Defines, out: string, lineinfo: boolean): void {
  const src = join(dir, 'kernel.cu');
  writeFileSync(src, source);
  const args = cubinNvccArgs(src, out, defines, { extra: lineinfo ? ['-lineinfo'] : [] });
  execFileSync('nvcc', args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 22 });
}

/** The contents of a cubin's code and launch-data sections by name (ELF64 little-endian; NOBITS sections have none). */
function codeSections(image: Buffer): Map<string, Buffer> {
  const shoff = Number(image.readBigUInt64LE(0x28));
  const shentsize = image.readUInt16LE(0x3a), shnum = image.readUInt16LE(0x3c), shstrndx = image.readUInt16LE(0x3e);
  const header = (i: number) => {
    const at = shoff + i * shentsize;
    return { name: image.readUInt32LE(at), type: image.readUInt32LE(at + 4), offset: Number(image.readBigUInt64LE(at + 24)), size: Number(image.readBigUInt64LE(at + 32)) };
  };
  const names = header(shstrndx);
  const nameAt = (o: number) => image.toString('latin1', names.offset + o, image.indexOf(0, names.offset + o));
  const NOBITS = 8;
  const out = new Map<string, Buffer>();
  for (let i = 0; i < shnum; i++) {
    const h = header(i);
    const name = nameAt(h.name);
    if (/^\.(text|nv\.info|nv\.constant)/.test(name)) out.set(name, h.type === NOBITS ? Buffer.alloc(0) : image.subarray(h.offset, h.offset + h.size));
  }
  return out;
}

function sameCode(a: Buffer, b: Buffer): boolean {
  const x = codeSections(a), y = codeSections(b);
  return x.size > 0 && x.size === y.size && [...x].every(([name, bytes]) => y.get(name)?.equals(bytes) === true);
}

function main(): number {
  const { values } = parseArgs({
    options: { base: { type: 'string', default: 'HEAD' }, after: { type: 'string' }, 'after-dir': { type: 'string' }, files: { type: 'string' }, keep: { type: 'string' }, lineinfo: { type: 'boolean' } },
    strict: true,
  });
  const base = values.base ?? 'HEAD';
  if (values.after !== undefined && values['after-dir'] !== undefined) throw new Error('--after and --after-dir: one or the other');
  const after: Side = values.after !== undefined ? { ref: values.after } : { dir: values['after-dir'] ?? null };
  const afterName = 'ref' in after ? after.ref : after.dir !== null ? `${after.dir} over the working tree` : 'the working tree';
  const all = compileTestDefineSets();
  const files = values.files ? values.files.split(',').filter((f) => f !== '') : [...new Set(all.map((s) => s.file))];
  for (const f of files) if (!all.some((s) => s.file === f)) throw new Error(`--files: no compile test compiles ${f}`);
  const sets = all.filter((s) => files.includes(s.file));
  const dir = mkdtempSync(join(tmpdir(), 'sf-cubin-compare-'));
  if (values.keep) mkdirSync(values.keep, { recursive: true });
  let same = 0;
  const problems: string[] = [];
  try {
    const sources = new Map(files.map((f) => [f, { before: kernelSource({ ref: base }, f), after: kernelSource(after, f) }]));
    console.log(`# ${base} against ${afterName}: ${sets.length} define sets of ${files.join(', ')}${values.lineinfo ? ' (-lineinfo: code and launch-data sections compared)' : ''}`);
    for (const f of files) if (sources.get(f)!.before === sources.get(f)!.after) console.log(`# note: ${f}'s source (headers inlined) is unchanged`);
    for (const [i, s] of sets.entries()) {
      const label = `${s.file} ${Object.entries(s.defines).map(([k, x]) => `${k}=${x}`).join(' ')}`;
      const src = sources.get(s.file)!;
      const b = join(dir, 'before.cubin'), a = join(dir, 'after.cubin');
      try {
        compile(dir, src.before, s.defines, b, values.lineinfo === true);
        compile(dir, src.after, s.defines, a, values.lineinfo === true);
      } catch (e) {
        problems.push(`${label}: compile failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? String(e)}`);
        console.log(`FAILED   ${label}`);
        continue;
      }
      const before = readFileSync(b), afterBytes = readFileSync(a);
      if (values.lineinfo ? sameCode(before, afterBytes) : before.equals(afterBytes)) {
        same++;
        console.log(`same     ${label} (${before.length} bytes)`);
      } else {
        problems.push(`${label}: cubins differ (${before.length} / ${afterBytes.length} bytes)`);
        console.log(`DIFFERS  ${label} (${before.length} / ${afterBytes.length} bytes)`);
        if (values.keep) {
          copyFileSync(b, join(values.keep, `before-${i}.cubin`));
          copyFileSync(a, join(values.keep, `after-${i}.cubin`));
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The per-set lines above name the differing sets; a failed compile's message is worth its lines.
  for (const p of problems.filter((x) => x.includes('compile failed'))) console.log(`# ${p}`);
  console.log(`# ${same} of ${sets.length} define sets byte-identical${values.lineinfo ? ' in code and launch data' : ''}${problems.length ? `, ${problems.length} not` : ''}`);
  return problems.length ? 1 : 0;
}

process.exitCode = main();
