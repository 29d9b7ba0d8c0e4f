import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * A prototype of one long-lived `virsh -c URI` per host, fed commands on stdin. virsh in
 * interactive mode writes a prompt and echoes each line ("virsh # CMD\n"), then the output;
 * stderr is merged into stdout (one pipe keeps the order), so an error is an "error: " line of
 * the answer. Each command is followed by `echo "@@kumo"'N'`: virsh prints @@kumoN, which
 * appears nowhere in the echoed line (there the quotes split it), so the answer ends exactly
 * there. Commands run one at a time, in order.
 */
export class VirshSession {
  private child: ChildProcessWithoutNullStreams;
  private out = '';
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private waiting: { marker: string; resolve: (text: string) => void; reject: (e: Error) => void } | undefined;
  private exited: Error | undefined;

  constructor(readonly uri: string) {
    // sh only merges the two streams; the URI is a positional parameter, never shell text.
    this.child = spawn('sh', ['-c', 'exec virsh -q -c "$1" 2>&1', 'sh', uri], { stdio: 'pipe' });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (s: string) => this.receive(s));
    this.child.on('exit', (code, signal) => {
      this.exited = new Error(`virsh for ${uri} ended (${signal ?? `exit ${code}`})`);
      this.waiting?.reject(this.exited);
    });
  }

  /** One virsh command, its arguments quoted for virsh's own parser; resolves with its output. */
  run(args: string[], timeoutMs = 30_000): Promise<string> {
    for (const a of args) {
      if (/['\n\r]/.test(a)) throw new Error(`a virsh session argument may not contain quotes or line breaks: ${JSON.stringify(a)}`);
    }
    const line = args.map((a) => `'${a}'`).join(' ');
    const next = this.queue.then(() => this.send(line, timeoutMs));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private send(line: string, timeoutMs: number): Promise<string> {
    if (this.exited) return Promise.reject(this.exited);
    const n = ++this.seq;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`virsh did not finish "${line}" within ${timeoutMs} ms`)), timeoutMs);
      this.waiting = {
        marker: `@@kumo${n}`,
        resolve: (text) => { clearTimeout(timer); resolve(text); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.child.stdin.write(`${line}\necho "@@kumo"'${n}'\n`);
    }).then((text) => {
      const error = /^error: (.+)$/m.exec(text);
      if (error) throw new Error(`libvirt refused: ${error[1]}`);
      return text;
    });
  }

  private receive(s: string): void {
    this.out += s;
    const w = this.waiting;
    if (!w) return;
    const at = this.out.indexOf(w.marker);
    if (at < 0) return;
    const chunk = this.out.slice(0, at);
    this.out = this.out.slice(at + w.marker.length);
    this.waiting = undefined;
    // chunk: "virsh # CMD\n" OUTPUT "virsh # echo ...\n"; the first prompt may have come with the last marker.
    const body = chunk.slice(chunk.indexOf('\n') + 1);
    w.resolve(body.slice(0, body.lastIndexOf('virsh # ')));
  }

  close(): void {
    this.child.stdin.end('quit\n');
    setTimeout(() => this.child.kill('SIGTERM'), 2_000).unref();
  }
}

export interface VirshEvent { domain: string; event: string; detail: string; at: number }

/**
 * `virsh event --all --loop` as a stream of lifecycle events: "event 'lifecycle' for domain
 * 'NAME': Stopped Destroyed" for every domain; `listener` gets each event with its arrival time.
 */
export function watchVirshEvents(uri: string, listener: (e: VirshEvent) => void): { stop: () => void } {
  const child = spawn('virsh', ['-q', '-c', uri, 'event', '--loop', '--event', 'lifecycle'], { stdio: ['ignore', 'pipe', 'pipe'] });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = /event 'lifecycle' for domain '?([^':]+)'?: (\S+) (\S+)/.exec(line);
    if (m) listener({ domain: m[1]!, event: m[2]!, detail: m[3]!, at: performance.now() });
  });
  return { stop: () => child.kill('SIGTERM') };
}
