import { invalid } from './errors.js';

/** What a user may ask of a Debian image build: its disk size and extra packages. */
export const DEFAULT_SIZE_GIB = 3;
export const SIZE_LIMITS = { min: 2, max: 64 };

/** `--size 3G`, `3GiB` or `3` (GiB): whole GiB only. */
export function parseImageSize(text: string): number {
  const m = /^\s*(\d+)\s*(g|gib|gb)?\s*$/i.exec(text);
  const n = m ? Number(m[1]) : NaN;
  return checkImageSize(n, text);
}

/** A size in GiB the build accepts; `shown` is what the user typed, for the message. */
export function checkImageSize(n: number, shown: string | number = n): number {
  if (!Number.isInteger(n) || n < SIZE_LIMITS.min || n > SIZE_LIMITS.max) {
    throw invalid(`--size must be whole GiB from ${SIZE_LIMITS.min}G to ${SIZE_LIMITS.max}G, got "${shown}"`,
      `pass e.g. --size ${DEFAULT_SIZE_GIB}G (instances grow it to their flavor's disk on first boot)`);
  }
  return n;
}

/** Debian package names (policy 5.6.1): lower case letters, digits, + - . ; at least two characters. */
export function parsePackages(list: string | string[]): string[] {
  const names = (Array.isArray(list) ? list : list.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(n)) {
      throw invalid(`"${n}" is not a Debian package name`, 'pass names separated by commas, e.g. --packages nginx,curl');
    }
  }
  return [...new Set(names)].sort();
}
