import { invalid } from './errors.js';

/** Sane bounds for what one small cloud hands out; beyond them a typo is likelier than intent. */
export const LIMITS = {
  vcpus: { min: 1, max: 64, unit: '', flag: '--vcpus' },
  ram: { min: 64, max: 262_144, unit: ' MiB', flag: '--ram' },
  'disk-size': { min: 1, max: 4096, unit: ' GiB', flag: '--disk-size' },
  disk: { min: 1, max: 4096, unit: ' GiB', flag: '--disk' },
} as const;

export function checkSize(what: keyof typeof LIMITS, value: number): number {
  const l = LIMITS[what];
  if (!Number.isInteger(value) || value < l.min || value > l.max) {
    throw invalid(`${l.flag} must be a whole number from ${l.min} to ${l.max}${l.unit}, got ${Number.isNaN(value) ? 'not a number' : value}`,
      `pass e.g. ${l.flag} ${l.min === 64 ? 1024 : l.min}`);
  }
  return value;
}

/** Parses a number the user typed; anything that is not plainly a whole number is NaN. */
export function parseWhole(text: string): number {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
}

/** A wait or grace period in whole seconds: the CLI's --timeout and the API's timeoutSeconds alike. */
export const TIMEOUT_SECONDS = { min: 1, max: 3600 } as const;

/** A --timeout the user typed, in seconds; anything but a whole number in TIMEOUT_SECONDS is refused (not NaN, not 0). */
export function parseSeconds(flag: string, text: string): number {
  const n = parseWhole(text);
  if (!Number.isInteger(n) || n < TIMEOUT_SECONDS.min || n > TIMEOUT_SECONDS.max) {
    throw invalid(`${flag} must be a whole number of seconds from ${TIMEOUT_SECONDS.min} to ${TIMEOUT_SECONDS.max}, got "${text}"`, `pass e.g. ${flag} 60`);
  }
  return n;
}

/** How many migrations an evacuation runs at once: `--parallel` and the API's `parallel`. */
export const EVACUATE_PARALLEL = { min: 1, max: 16 } as const;
/** How many WAF log entries one read returns: `--limit` and the API's `limit`. */
export const WAF_LOG_LIMIT = { min: 1, max: 1000 } as const;
/** A TCP port. */
export const PORT_RANGE = { min: 1, max: 65_535 } as const;

/** A whole number the user typed for `flag`, within `range`; anything else is refused (never NaN, never a silent default). */
export function parseCount(flag: string, text: string, range: { readonly min: number; readonly max: number }): number {
  const n = parseWhole(text);
  if (!Number.isInteger(n) || n < range.min || n > range.max) {
    throw invalid(`${flag} must be a whole number from ${range.min} to ${range.max}, got "${text}"`, `pass e.g. ${flag} ${range.min}`);
  }
  return n;
}

