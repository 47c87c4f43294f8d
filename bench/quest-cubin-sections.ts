/**
 * Per-entry machine code of a cubin, to show that splitting quest.cu into entry groups (session 10) left each entry's
 * code as it was: an entry's sections in its group's cubin against the same entry's in the whole module's cubin.
 *
 * A cubin is an ELF64 file; each kernel NAME has its code in `.text.NAME`, its parameter bank in `.nv.constant0.NAME`,
 * its static shared memory as `.nv.shared.NAME` (no bytes, only a size) and its launch attributes in `.nv.info.NAME`.
 * The code and the bank are compared byte for byte, the shared memory by size, and `.nv.info.NAME` attribute by
 * attribute with its one symbol reference (EIATTR_PARAM_CBANK: the parameter bank's ELF symbol, by index) read as the
 * symbol's name: a module with fewer entries numbers its symbols differently (seen: only that index differed).
 */

export interface CubinSection { name: string; type: number; bytes: Buffer; size: number }

const SHT_NOBITS = 8;

/** The sections of an ELF64 little-endian image, by name. */
export function cubinSections(image: Buffer): Map<string, CubinSection> {
  if (image.length < 64 || image.readUInt32BE(0) !== 0x7f454c46 || image[4] !== 2 || image[5] !== 1) {
    throw new Error('not an ELF64 little-endian image (a cubin)');
  }
  const shoff = Number(image.readBigUInt64LE(0x28));
  const shentsize = image.readUInt16LE(0x3a), shnum = image.readUInt16LE(0x3c), shstrndx = image.readUInt16LE(0x3e);
  const header = (i: number) => {
    const at = shoff + i * shentsize;
    return {
      nameOffset: image.readUInt32LE(at), type: image.readUInt32LE(at + 4),
      offset: Number(image.readBigUInt64LE(at + 0x18)), size: Number(image.readBigUInt64LE(at + 0x20)),
    };
  };
  const names = header(shstrndx);
  const nameAt = (offset: number) => {
    const start = names.offset + offset;
    return image.toString('latin1', start, image.indexOf(0, start));
  };
  const out = new Map<string, CubinSection>();
  for (let i = 1; i < shnum; i++) {
    const h = header(i);
    const name = nameAt(h.nameOffset);
    const bytes = h.type === SHT_NOBITS ? Buffer.alloc(0) : image.subarray(h.offset, h.offset + h.size);
    out.set(name, { name, type: h.type, bytes, size: h.size });
  }
  return out;
}

/** ELF symbol names by index (.symtab, names in .strtab). */
function symbolNames(sections: Map<string, CubinSection>): string[] {
  const symtab = sections.get('.symtab'), strtab = sections.get('.strtab');
  if (!symtab || !strtab) throw new Error('cubin without .symtab / .strtab');
  const names: string[] = [];
  for (let at = 0; at + 24 <= symtab.bytes.length; at += 24) {
    const offset = symtab.bytes.readUInt32LE(at);
    names.push(strtab.bytes.toString('latin1', offset, strtab.bytes.indexOf(0, offset)));
  }
  return names;
}

const EIFMT_NVAL = 1, EIFMT_BVAL = 2, EIFMT_HVAL = 3, EIFMT_SVAL = 4;
const EIATTR_PARAM_CBANK = 0x0a;

/**
 * An entry's launch attributes (.nv.info.NAME) as text, one attribute per item, EIATTR_PARAM_CBANK's symbol index
 * replaced by the symbol's name; null when the entry has none.
 */
export function entryAttributes(sections: Map<string, CubinSection>, entry: string): string[] | null {
  const info = sections.get(`.nv.info.${entry}`);
  if (!info) return null;
  const b = info.bytes, out: string[] = [];
  let symbols: string[] | null = null;
  for (let i = 0; i < b.length;) {
    const format = b[i]!, id = b[i + 1]!;
    if (format === EIFMT_SVAL) {
      const n = b.readUInt16LE(i + 2);
      let data = b.subarray(i + 4, i + 4 + n).toString('hex');
      if (id === EIATTR_PARAM_CBANK && n >= 4) {
        symbols ??= symbolNames(sections);
        data = `${symbols[b.readUInt32LE(i + 4)] ?? '?'}:${b.subarray(i + 8, i + 4 + n).toString('hex')}`;
      }
      out.push(`${id.toString(16)}=${data}`);
      i += 4 + n;
    } else if (format === EIFMT_HVAL) {
      out.push(`${id.toString(16)}=${b.readUInt16LE(i + 2)}`);
      i += 4;
    } else if (format === EIFMT_BVAL || format === EIFMT_NVAL) {
      out.push(`${id.toString(16)}=${format === EIFMT_BVAL ? b[i + 2] : ''}`);
      i += format === EIFMT_BVAL ? 4 : 2;
    } else {
      throw new Error(`.nv.info.${entry}: unknown attribute format ${format} at byte ${i}`);
    }
  }
  return out;
}

/** The kernels (entries) of a cubin: every NAME with a `.nv.constant0.NAME` parameter bank. */
export function cubinEntries(image: Buffer): string[] {
  const prefix = '.nv.constant0.';
  return [...cubinSections(image).keys()].filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length)).sort();
}

/** How one entry of `after` compares with the same entry of `before`. */
export interface EntryComparison {
  entry: string;
  /** .text, .nv.constant0 bytes and .nv.shared size all equal. */
  codeEqual: boolean;
  /** The launch attributes (.nv.info, symbols by name) equal as well. */
  infoEqual: boolean;
  textBytes: number;
  /** What differs, or why the entry could not be compared. */
  detail: string;
}

export function compareEntry(before: Map<string, CubinSection>, after: Map<string, CubinSection>, entry: string): EntryComparison {
  const diffs: string[] = [];
  let textBytes = 0;
  for (const kind of ['.text.', '.nv.constant0.', '.nv.shared.']) {
    const b = before.get(kind + entry), a = after.get(kind + entry);
    if (!b && !a) continue;
    if (!b || !a) {
      diffs.push(`${kind}${entry} only ${b ? 'before' : 'after'}`);
      continue;
    }
    if (kind === '.text.') textBytes = a.size;
    const same = kind === '.nv.shared.' ? a.size === b.size : a.bytes.equals(b.bytes);
    if (!same) diffs.push(`${kind}${entry} differs (${b.size} -> ${a.size} bytes)`);
  }
  if (!after.has(`.text.${entry}`)) diffs.push(`no .text.${entry} after`);
  const infoB = entryAttributes(before, entry), infoA = entryAttributes(after, entry);
  const infoEqual = infoB !== null && infoA !== null && infoB.join(' ') === infoA.join(' ');
  const detail = diffs.length ? diffs.join('; ') : infoEqual ? 'identical' : 'code identical; launch attributes differ';
  return { entry, codeEqual: diffs.length === 0, infoEqual, textBytes, detail };
}
