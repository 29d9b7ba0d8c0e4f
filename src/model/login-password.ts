import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { invalid } from './errors.js';

/**
 * The passwords people log in with (the dashboard; the OpenStack-compatible API to come), kept
 * as scrypt hashes: Node's built-in KDF, slow and memory-hard, so a stolen store costs an
 * attacker real work per guess. Salt and parameters live in the string,
 * "scrypt$N$r$p$SALT$HASH" (base64url), so a later, costlier setting reads older hashes still.
 * Not the guests' root passwords: those are sha512-crypt for /etc/shadow (password.ts).
 */
export const LOGIN_PASSWORD = { minLength: 12, maxLength: 1024 } as const;

/** 64 MiB and about a tenth of a second per hash on a small server: dear for a guesser, cheap for one login. */
export const SCRYPT_PARAMS = { N: 2 ** 16, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const HASH_FORM = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

/** scrypt needs 128·N·r bytes; Node's default cap (32 MiB) is below that for N = 2^16. */
const maxmem = (N: number, r: number) => 256 * N * r;

function derive(password: string, salt: Buffer, N: number, r: number, p: number, bytes: number): Promise<Buffer> {
  const opts: ScryptOptions = { N, r, p, maxmem: maxmem(N, r) };
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, bytes, opts, (e, key) => (e ? reject(e) : resolve(key))));
}

/** Refuses a password too short, too long or with control characters, naming the rule. */
export function checkLoginPassword(password: string): string {
  if (password.length < LOGIN_PASSWORD.minLength) {
    throw invalid(`the password is too short (${password.length} characters): it needs at least ${LOGIN_PASSWORD.minLength}`, 'pick a longer one, e.g. four random words');
  }
  if (password.length > LOGIN_PASSWORD.maxLength) throw invalid(`the password is longer than ${LOGIN_PASSWORD.maxLength} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(password)) throw invalid('the password contains control characters (a newline?)', 'remove them');
  return password;
}

/** "scrypt$N$r$p$salt$hash" of a password that passed checkLoginPassword. */
export async function hashLoginPassword(password: string): Promise<string> {
  checkLoginPassword(password);
  const { N, r, p } = SCRYPT_PARAMS;
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, N, r, p, KEY_BYTES);
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** Whether `password` is the one `stored` was made from; false for a malformed hash. Compares in constant time. */
export async function verifyLoginPassword(password: string, stored: string): Promise<boolean> {
  const m = HASH_FORM.exec(stored);
  if (!m) return false;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Bounds: a hash string from the store must not make one login take a gigabyte.
  if (N < 2 ** 10 || N > 2 ** 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const expected = Buffer.from(m[5]!, 'base64url');
  if (expected.length < 16 || password.length > LOGIN_PASSWORD.maxLength) return false;
  const key = await derive(password, Buffer.from(m[4]!, 'base64url'), N, r, p, expected.length);
  return timingSafeEqual(key, expected);
}
