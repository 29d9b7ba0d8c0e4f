import { connect } from 'node:net';

/** One HTTP GET with a deadline; undefined when nothing answered. */
export async function httpGet(url: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return await res.text();
  } catch {
    return undefined;
  }
}

/** Whether an SSH server answers at host:port with its banner ("SSH-2.0-…") within the deadline. */
export function sshBanner(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('data', (d: Buffer) => done(d.subarray(0, 4).toString('latin1') === 'SSH-'));
    socket.once('error', () => done(false));
    socket.once('end', () => done(false));
  });
}
