import { createWriteStream, existsSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { KumoError } from '../../model/errors.js';

/** Where one hop of a download may connect: the address checked for it (no second DNS answer). */
export interface Hop {
  address: string;
  family: 4 | 6;
}

export interface DownloadOptions {
  /** Bytes the whole file may have; more aborts the download and removes the part file. */
  maxBytes: number;
  /**
   * Checks a URL before any connection to it (the first, and every redirect's) and returns the
   * address to connect to; it throws to refuse. The connection goes to exactly that address.
   */
  hop: (url: URL) => Promise<Hop>;
  maxRedirects?: number;
  onProgress?: (done: number, total: number | undefined) => void;
}

/** Every address a host name has (an IP literal: itself). */
export async function resolveHost(host: string): Promise<Hop[]> {
  const all = await lookup(host, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
}

/**
 * Downloads with resume (a partial file is continued with an HTTP Range request), to the
 * address `hop` checked, following at most `maxRedirects` redirects, each checked again.
 */
export async function download(url: string, dest: string, opts: DownloadOptions): Promise<void> {
  const have = existsSync(dest) ? (await stat(dest)).size : 0;
  if (have > opts.maxBytes) await rm(dest, { force: true });
  const from = have > opts.maxBytes ? 0 : have;
  const res = await get(new URL(url), from, opts);
  if (res.statusCode === 416 && from > 0) { res.resume(); return; } // the part file is already whole
  const resumed = res.statusCode === 206;
  if (res.statusCode !== 200 && !resumed) {
    res.resume();
    // The caller's own URL: its answer is theirs to read (not a command of kumo's, withheld from the API).
    throw new KumoError('INVALID_INPUT', `could not download ${url}: HTTP ${res.statusCode}`, 'check the URL');
  }
  const length = Number(res.headers['content-length']);
  const total = Number.isFinite(length) && length > 0 ? length + (resumed ? from : 0) : undefined;
  if (total !== undefined && total > opts.maxBytes) {
    res.destroy();
    await rm(dest, { force: true });
    throw tooLarge(url, opts.maxBytes, `it announces ${total} bytes`);
  }
  let done = resumed ? from : 0;
  let over = false;
  res.on('data', (chunk: Buffer) => {
    done += chunk.length;
    if (done > opts.maxBytes && !over) {
      over = true;
      res.destroy(new Error('over the size limit'));
    }
    opts.onProgress?.(done, total);
  });
  try {
    await pipeline(res, createWriteStream(dest, { flags: resumed ? 'a' : 'w' }));
  } catch (e) {
    if (over) {
      await rm(dest, { force: true });
      throw tooLarge(url, opts.maxBytes, `it sent more than ${opts.maxBytes} bytes`);
    }
    throw new KumoError('HOST_UNREACHABLE', `the download of ${url} broke off after ${done} bytes: ${(e as Error).message}`,
      'run the same import again: it resumes where it stopped');
  }
}

const tooLarge = (url: string, max: number, why: string) => new KumoError('INVALID_INPUT', `${url} is larger than the import limit of ${max} bytes (${why})`,
  'root on the machine may raise it: kumo config set image.max_import_gib N');

/** One GET after another until an answer that is not a redirect; each hop checked before it connects. */
async function get(first: URL, from: number, opts: DownloadOptions): Promise<IncomingMessage> {
  let url = first;
  for (let redirects = 0; ; redirects++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new KumoError('INVALID_INPUT', `the download was redirected to ${url.href}: only http and https are followed`, 'give the final http(s) URL');
    }
    const hop = await opts.hop(url);
    const res = await connect(url, hop, from);
    const location = res.headers.location;
    if (![301, 302, 303, 307, 308].includes(res.statusCode ?? 0) || !location) return res;
    res.resume();
    if (redirects >= (opts.maxRedirects ?? 5)) {
      throw new KumoError('INVALID_INPUT', `${first.href} redirects more than ${opts.maxRedirects ?? 5} times`, 'give the final URL');
    }
    url = new URL(location, url);
  }
}

function connect(url: URL, hop: Hop, from: number): Promise<IncomingMessage> {
  // The connection goes to the address that was checked, never to a second DNS answer.
  const pinned = ((_host: string, options: { all?: boolean }, cb: (...a: unknown[]) => void) => {
    if (options.all) cb(null, [{ address: hop.address, family: hop.family }]);
    else cb(null, hop.address, hop.family);
  }) as unknown as LookupFunction;
  const options: RequestOptions = { method: 'GET', lookup: pinned, timeout: 60_000, headers: from ? { Range: `bytes=${from}-` } : {} };
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, options, resolve);
    req.on('timeout', () => req.destroy(new Error('no answer for 60 s')));
    req.on('error', (e) => reject(new KumoError('HOST_UNREACHABLE', `could not download ${url.href}: ${e.message}`, 'check the URL and that this machine can reach it')));
    req.end();
  });
}
