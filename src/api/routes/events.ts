import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../server.js';
import type { SequencedEvent } from '../../service/operations.js';
import { errors } from '../schemas.js';

/** A comment line this often keeps proxies and idle timeouts from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;

const EventsQuery = z.object({
  after: z.coerce.number().int().min(0).optional().describe('replay the events after this sequence number (what Last-Event-ID does on a reconnect)'),
});

/**
 * Server-Sent Events: one text/event-stream per client, an event per operation change
 * ("operation") and per resource change ("resource"). Each event's id is its sequence number,
 * so a client that reconnects with Last-Event-ID (EventSource does it by itself) misses nothing
 * the server still remembers. One-way is all live views need, and SSE is plain HTTP: the same
 * bearer token, proxies and curl work; WebSocket stays for the consoles, which are two-way.
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
        200: { description: 'an endless text/event-stream; each event has id (sequence), event (operation | resource) and JSON data', content: { 'text/event-stream': { schema: z.string() } } },
        ...errors(400),
      },
    },
  }, async (req, reply) => {
    const lastId = Number(req.headers['last-event-id']);
    const after = req.query.after ?? (Number.isInteger(lastId) && lastId >= 0 ? lastId : undefined);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx in front must not buffer the stream
    });
    res.write(`retry: 3000\n: kumo events, newest sequence ${ops.lastSeq()}\n\n`);
    const send = (e: SequencedEvent) => {
      res.write(`id: ${e.seq}\nevent: ${e.event.type}\ndata: ${JSON.stringify({ ...e.event, seq: e.seq, at: e.at })}\n\n`);
    };
    const off = ops.subscribe(send, after);
    const beat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    const end = () => {
      if (!open.delete(end)) return;
      clearInterval(beat);
      off();
      res.end();
    };
    open.add(end);
    res.on('close', end);
    res.on('error', end);
    return reply;
  });
};
