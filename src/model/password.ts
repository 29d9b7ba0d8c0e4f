import { randomBytes } from 'node:crypto';
import { encrypt } from 'unixcrypt';
import { invalid } from './errors.js';

/** Root passwords leave kumo only as sha512-crypt hashes, the form /etc/shadow holds. */
export function hashPassword(password: string): string {
  if (password.length === 0) throw invalid('the root password is empty', 'give a password of at least one character');
  if (password.length > 256) throw invalid('the root password is longer than 256 characters');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(password)) throw invalid('the root password contains control characters (a newline?)', 'remove them');
  return encrypt(password, `$6$${randomBytes(12).toString('base64').replace(/[^A-Za-z0-9./]/g, '.').slice(0, 16)}`);
}

/** A crypt(3) hash /etc/shadow accepts: sha512 ($6$), sha256 ($5$), yescrypt ($y$) or bcrypt ($2?$). */
export const CRYPT_HASH = /^\$(6|5|y|2[aby])\$[^\s:]+$/;
