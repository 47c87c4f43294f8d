/**
 * Proof that vertical-slash-search.cu's entry groups (session 10) compile each entry to the machine code the whole
 * module had: the .cu as it was at a git ref, compiled whole, against each named group of the working tree's .cu
 * (-DVS_SEARCH_ENTRIES=<id>, vertical-slash-search-groups.ts), entry by entry (bench/quest-cubin-sections.ts: code,
 * parameter bank and shared memory byte for byte, launch attributes with symbols by name). nvcc with the runtime's
 * NVRTC options (sm_90, --std=c++17, -lineinfo); runs here, no GPU. Also prints each compile's nvcc seconds: the
 * whole module against the groups a default search loads.
 *
 *   npx tsx bench/vertical-slash-split-proof.ts [--base REF] [--groups default|all|rank,defaults,...]
 *
 * --base: the ref whose whole .cu is "before" (default HEAD); --groups: the groups compiled "after" (default: the
 * default searches' rank and defaults). The timing groups compile with VS_SEARCH_TIMING on both sides. Prints
 * one line per entry and exits 1 when any differs or a group's entries are not exactly its table's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readKernelSource } from '../src/backends/cuda/kernel-source.js';
import { VS_SEARCH_ENTRY_GROUPS, type VsSearchEntryGroup, vsSearchGroupDefines } from '../src/backends/cuda/kernels/vertical-slash-search-groups.js';
import { runIfDirect } from './bench-run.js';
import { compileAsRuntime, kernelSourceAt } from './kernel-split-compile.js';
import { compareEntry, cubinEntries, cubinSections } from './quest-cubin-sections.js';

const FILE = 'vertical-slash-search.cu';
const DEFAULT_GROUPS: VsSearchEntryGroup[] = ['rank', 'defaults'];

function groupsFrom(text: string): VsSearchEntryGroup[] {
  if (text === 'default') return DEFAULT_GROUPS;
  const all = Object.keys(VS_SEARCH_ENTRY_GROUPS) as VsSearchEntryGroup[];
  if (text === 'all') return all;
  const named = text.split(',');
  for (const g of named) if (!all.includes(g as VsSearchEntryGroup)) throw new Error(`--groups: unknown group ${g} (${all.join(', ')})`);
  return named as VsSearchEntryGroup[];
}

function main(): number {
  const { values } = parseArgs({ options: { base: { type: 'string', default: 'HEAD' }, groups: { type: 'string', default: 'default' } } });
  const groups = groupsFrom(values.groups!);
  const dir = mkdtempSync(join(tmpdir(), 'vs-split-'));
  let failed = 0;
  try {
    const base = kernelSourceAt(values.base!, FILE), after = readKernelSource(FILE);
    const wholes = new Map<boolean, ReturnType<typeof cubinSections>>();
    const whole = (timing: boolean) => {
      let sections = wholes.get(timing);
      if (!sections) {
        const built = compileAsRuntime(dir, timing ? 'before-timing' : 'before', base, timing ? { VS_SEARCH_TIMING: 1 } : {});
        sections = cubinSections(built.image);
        wholes.set(timing, sections);
        console.log(`before: ${values.base} ${FILE} whole${timing ? ' (VS_SEARCH_TIMING)' : ''}, ${cubinEntries(built.image).length} entries, nvcc ${built.seconds.toFixed(1)} s`);
      }
      return sections;
    };
    for (const group of groups) {
      const defines = vsSearchGroupDefines(group);
      const before = whole('VS_SEARCH_TIMING' in defines);
      const built = compileAsRuntime(dir, group, after, defines);
      const entries = cubinEntries(built.image), sections = cubinSections(built.image);
      const expected: readonly string[] = VS_SEARCH_ENTRY_GROUPS[group].entries;
      const missing = expected.filter((e) => !entries.includes(e)), extra = entries.filter((e) => !expected.includes(e));
      console.log(`${group} (${JSON.stringify(defines)}): ${entries.length} entries, nvcc ${built.seconds.toFixed(1)} s`);
      if (missing.length || extra.length) {
        failed++;
        console.log(`  missing ${missing.join(', ') || 'none'}; not in the group ${extra.join(', ') || 'none'}`);
      }
      for (const entry of entries) {
        if (!before.has(`.text.${entry}`)) {
          console.log(`  ${entry}: new (not in the base)`);
          continue;
        }
        const c = compareEntry(before, sections, entry);
        console.log(`  ${entry}: ${c.detail} (${c.textBytes} bytes of code)`);
        if (!(c.codeEqual && c.infoEqual)) failed++;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(failed ? `${failed} entries differ or are missing` : 'every entry identical');
  return failed ? 1 : 0;
}

runIfDirect(import.meta.url, main);
