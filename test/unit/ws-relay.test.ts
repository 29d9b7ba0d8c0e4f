import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { SocketToSink, streamToSocket } from '../../src/api/ws-relay.js';

/**
 * Console relays honour backpressure both ways (issue 14, bounded WebSockets): a slow browser
 * pauses the VNC/serial source instead of growing the server's buffer, and a slow VNC server
 * pauses reading the browser's socket until it drains.
 */

/** Enough of a ws WebSocket: a send buffer the test drains by hand. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  isPaused = false;
  private pending: (() => void)[] = [];
  send(data: Buffer, _opts: unknown, cb: () => void): void {
    this.bufferedAmount += data.length;
    this.pending.push(() => { this.bufferedAmount -= data.length; cb(); });
  }
  flush(): void { for (const f of this.pending.splice(0)) f(); }
  pause(): void { this.isPaused = true; }
  resume(): void { this.isPaused = false; }
}

test('a slow browser pauses the source above 1 MiB buffered and resumes it once the socket drains', () => {
  const ws = new FakeSocket();
  const source = new PassThrough();
  streamToSocket(source, ws as unknown as WebSocket);
  source.write(Buffer.alloc(512 * 1024));
  assert.equal(source.isPaused(), false);
  source.write(Buffer.alloc(768 * 1024));
  assert.equal(source.isPaused(), true, 'paused while 1.25 MiB wait for the browser');
  ws.flush();
  assert.equal(source.isPaused(), false, 'resumed once the bytes left');
});

test('a sink that does not keep up pauses the WebSocket until it drains; messages before the sink are queued in order', async () => {
  const ws = new FakeSocket();
  const got: string[] = [];
  let release: (() => void) | undefined;
  const sink = new Writable({
    highWaterMark: 4,
    write(chunk: Buffer, _enc, done) { got.push(chunk.toString()); release = done; },
  });
  const relay = new SocketToSink(ws as unknown as WebSocket);
  relay.write(Buffer.from('early'));
  relay.attach(sink);
  assert.deepEqual(got, ['early']);
  assert.equal(ws.isPaused, true, 'the sink is full: the browser is not read');
  release!();
  await new Promise((r) => setImmediate(r));
  assert.equal(ws.isPaused, false, 'drained: read again');
  relay.write(Buffer.from('later'));
  assert.deepEqual(got, ['early', 'later']);
});

test('a flood before the sink is there stops reading the browser at 1 MiB queued', () => {
  const ws = new FakeSocket();
  const relay = new SocketToSink(ws as unknown as WebSocket);
  for (let i = 0; i < 5; i++) relay.write(Buffer.alloc(256 * 1024));
  assert.equal(ws.isPaused, true);
});
