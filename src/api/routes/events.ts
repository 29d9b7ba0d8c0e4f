import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../deps.js';
import { DEFAULT_PROJECT } from '../../model/actor.js';
import type { ReplayGap, SequencedEvent } from '../../service/operations.js';
import { errors } from '../schemas.js';

/** A comment line this often keeps proxies and idle timeouts from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;

/**
 * How many bytes may wait unsent for one client. A client that does not read (stalled, or on a
 * link slower than the events) is dropped beyond it rather than buffered for without end; it
 * reconnects with Last-Event-ID and is caught up from what the server keeps. A replay on connect
 * is not counted (it is bounded by the events kept), so a client that reads always gets ahead.
 */
export const MAX_QUEUED_BYTES = 1024 * 1024;

const EventsQuery = z.object({
  after: z.string().max(100).optional()
    .describe('replay the events after the one with this id, "<run>-<seq>" (what Last-Event-ID does on a reconnect)'),
});

const RESET_MESSAGE: Record<ReplayGap, string> = {
  restarted: 'the server restarted since your last event: reload your state',
  'too-old': 'the events after your last one are no longer kept: reload your state',
  unknown: 'your last event id is not one this server gave: reload your state',
};

/**
 * Which events a request's actor gets: an admin all; anyone else its project's operations and
 * every resource event (they carry a kind and a name only; a name is global anyway).
 */
const visibleTo = (req: FastifyRequest) => (e: SequencedEvent): boolean =>
  req.actor?.role === 'admin' || e.event.type !== 'operation' || (e.event.operation.project ?? DEFAULT_PROJECT) === req.actor?.project;

const frame = (id: string, event: string, data: object) => `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
const eventFrame = (e: SequencedEvent) => frame(e.id, e.event.type, { ...e.event, id: e.id, seq: e.seq, at: e.at });

/**
 * Server-Sent Events: one text/event-stream per client, an event per operation change
 * ("operation") and per resource change ("resource"). Each event's id is "<run>-<seq>": the
 * server run and a sequence number, so a client that reconnects with Last-Event-ID (EventSource
 * does it by itself) misses nothing the server still keeps, and one whose id the server cannot
 * continue from (another run's, after a restart, or too old) gets a "reset" event: reload the
 * state over REST, then follow the stream. One-way is all live views need, and SSE is plain
 * HTTP: the same bearer token, proxies and curl work; WebSocket stays for the consoles.
 */
export const eventRoutes: FastifyPluginAsyncZod<ApiDeps> = async (app, { ops }) => {
  const open = new Set<() => void>();
  // Open streams would keep close() waiting forever: end them when the server closes.
  app.addHook('preClose', async () => {
    for (const end of [...open]) end();
  });

  app.get('/events', {
    // A HEAD would open an endless stream with no body to ever send.
    exposeHeadRoute: false,
    schema: {
      tags: ['operations'], operationId: 'streamEvents', querystring: EventsQuery,
      summary: 'Server-Sent Events: operation progress and state changes, and resource changes, as they happen',
      response: {
        200: {
          description: 'an endless text/event-stream; each event has id ("<run>-<seq>"), event (operation | resource) and JSON data. ' +
            'After a reconnect from an id the server cannot continue from (it restarted, or the events are no longer kept), ' +
            'the first event is "reset": reload the state, then go on with the stream. A client that reads too slowly is disconnected ' +
            'and catches up when it reconnects.',
          content: { 'text/event-stream': { schema: z.string() } },
        },
        ...errors(400),
      },
    },
  }, async (req, reply) => {
    const header = req.headers['last-event-id'];
    const lastId = req.query.after ?? (typeof header === 'string' && header !== '' ? header : undefined);
    const visible = visibleTo(req);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx in front must not buffer the stream
    });
    res.write(`retry: 3000\n: kumo events, newest id ${ops.lastId()}\n\n`);
    // Catch-up and subscribe in one synchronous run: no event can fall between them.
    if (lastId !== undefined) {
      const missed = ops.since(lastId);
      if ('gap' in missed) {
        // Its id is this run's newest: the client's next reconnect continues from here.
        res.write(frame(ops.lastId(), 'reset', { type: 'reset', reason: missed.gap, message: RESET_MESSAGE[missed.gap],
          id: ops.lastId(), seq: ops.lastSeq(), at: new Date().toISOString() }));
      } else {
        for (const e of missed.events.filter(visible)) res.write(eventFrame(e));
      }
    }
    const write = (text: string) => {
      if (res.writableLength <= MAX_QUEUED_BYTES) {
        res.write(text);
        return;
      }
      req.log.warn({ queued: res.writableLength }, 'events: dropping a client that does not keep up (it catches up on reconnect)');
      end(true);
    };
    const off = ops.subscribe((e) => { if (visible(e)) write(eventFrame(e)); });
    const beat = setInterval(() => write(': ping\n\n'), HEARTBEAT_MS);
    function end(drop = false) {
      if (!open.delete(end)) return;
      clearInterval(beat);
      off();
      // Dropped: what is queued is thrown away with the connection.
      if (drop) res.destroy();
      else res.end();
    }
    open.add(end);
    res.on('close', () => end());
    res.on('error', () => end());
    return reply;
  });
};
