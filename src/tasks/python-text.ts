/**
 * String primitives with the semantics of Python 3's `str` methods and `re` module on Unicode text.
 * The original scorers are written in Python; matching them exactly means matching Python's idea of
 * whitespace, word characters, digits and "any character", which differ from JavaScript's defaults
 * (JS `\s` includes U+FEFF but not U+001C–U+001F or U+0085; JS `\w`, `\d` and `\b` are ASCII-only;
 * JS `.` and `$` with the m flag also stop at \r, U+2028 and U+2029, Python's only at \n).
 * Use these pieces inside regular expressions compiled with the `u` flag.
 */

/** Python's `\s` / `str.isspace()` set, as a character-class body. */
export const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
/** `\s` */
export const S = `[${PY_SPACE}]`;
/** Python's `\w`: letters, numbers, underscore. */
export const PY_WORD = '\\p{L}\\p{N}_';
/** `\d`: any Unicode decimal digit. */
export const D = '\\p{Nd}';
/** Python's `.` without DOTALL: anything but \n. */
export const DOT = '[^\\n]';
/** Python's `$` without MULTILINE: the end, or just before a final \n. */
export const END = '(?=\\n?$)';
/** Python's `$` with MULTILINE: the end or just before any \n. */
export const LINE_END = '(?=\\n|$)';

const leadingSpace = new RegExp(`^${S}+`, 'u');
const trailingSpace = new RegExp(`${S}+$`, 'u');
const spaceRuns = new RegExp(`${S}+`, 'gu');

/** `s.strip()` */
export function pyStrip(s: string): string {
  return s.replace(leadingSpace, '').replace(trailingSpace, '');
}

/** `s.split()` (no argument): split on whitespace runs, no empty pieces. */
export function pySplit(s: string): string[] {
  const stripped = pyStrip(s);
  return stripped === '' ? [] : stripped.split(spaceRuns);
}

/** `re.sub(r'\s+', ' ', s)` */
export function pyCollapseSpaces(s: string): string {
  return s.replace(spaceRuns, ' ');
}

const nd = /^\p{Nd}$/u;

/**
 * `int(digits)` for a string of Unicode decimal digits, returned as a canonical decimal string so that
 * arbitrarily long numbers compare exactly. Unicode lays every decimal digit set out as a contiguous
 * run starting at zero, so a digit's value is its offset from the start of its run, modulo 10.
 */
export function pyIntKey(digits: string): string {
  let out = '';
  for (const ch of digits) {
    if (!nd.test(ch)) throw new Error(`not a decimal digit: ${JSON.stringify(ch)}`);
    let start = ch.codePointAt(0) as number;
    while (start > 0 && nd.test(String.fromCodePoint(start - 1))) start--;
    out += String(((ch.codePointAt(0) as number) - start) % 10);
  }
  const trimmed = out.replace(/^0+/, '');
  return trimmed === '' ? '0' : trimmed;
}

/**
 * Python's `round(x, 2)` for x ≥ 0: round half to even on the exact binary value. JS `toFixed` rounds
 * the exact value too but sends ties up; the only exact ties at two decimals are odd multiples of 1/8.
 */
export function pyRound2(x: number): number {
  if (!Number.isFinite(x)) return x;
  const eighths = x * 8; // exact: a power-of-two scale
  if (Number.isInteger(eighths) && Math.abs(eighths) % 2 === 1) {
    const hundredthsDown = Math.floor(x * 100); // e.g. 0.125 → 12, tie between 12 and 13
    const even = hundredthsDown % 2 === 0 ? hundredthsDown : hundredthsDown + 1;
    return even / 100;
  }
  return Number.parseFloat(x.toFixed(2));
}
