import type { Readable, Writable } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * The largest message a console WebSocket takes. noVNC's and xterm's messages are a few KiB
 * (a clipboard paste at most); ws's default of 100 MiB let one client make the server hold that
 * much per message. A larger one closes the socket with 1009 (message too big).
 */
export const WS_MAX_PAYLOAD = 1024 * 1024;

/** Above this many bytes waiting for a slow peer, the other side stops being read; below LOW it reads again. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

/**
 * Sends what a stream gives (VNC server, serial terminal) to the browser, pausing the stream
 * while the WebSocket's buffer is above HIGH_WATER: a slow browser slows the source down
 * instead of growing the server's memory. Each send's callback says when its bytes left.
 */
export function streamToSocket(source: Readable, ws: WebSocket): void {
  let paused = false;
  const maybeResume = () => {
    if (paused && ws.bufferedAmount < LOW_WATER) {
      paused = false;
      source.resume();
    }
  };
  source.on('data', (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true }, maybeResume);
    if (!paused && ws.bufferedAmount > HIGH_WATER) {
      paused = true;
      source.pause();
    }
  });
}

/**
 * Where the browser's messages go: written to the sink once it is there (queued before), and
 * the WebSocket stops being read while the sink (or the queue) is full, until it drains.
 */
export class SocketToSink {
  private sink: Writable | undefined;
  private readonly queued: Buffer[] = [];
  private queuedBytes = 0;

  constructor(private readonly ws: WebSocket) {}

  write(buf: Buffer): void {
    if (!this.sink) {
      this.queued.push(buf);
      this.queuedBytes += buf.length;
      if (this.queuedBytes > HIGH_WATER) this.ws.pause(); // resumed when the sink comes
      return;
    }
    if (!this.sink.write(buf) && !this.ws.isPaused) {
      this.ws.pause();
      this.sink.once('drain', () => this.ws.resume());
    }
  }

  /** The sink is ready: what was queued goes first. */
  attach(sink: Writable): void {
    this.sink = sink;
    const queued = this.queued.splice(0);
    this.queuedBytes = 0;
    if (this.ws.isPaused) this.ws.resume();
    for (const b of queued) this.write(b);
  }
}
