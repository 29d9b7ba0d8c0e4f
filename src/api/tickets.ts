import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ActorRequest, SerialResolver, VncResolver } from './deps.js';
import { API_PREFIX, errors, NameParams, optionalBody } from './schemas.js';

/** How long a console ticket may wait for its WebSocket: enough for a page to load noVNC, too short to leak usefully. */
export const TICKET_TTL_MS = 30_000;

/** Which console a ticket opens: the VNC screen (noVNC) or the serial line (xterm.js). */
export type ConsoleKind = 'vnc' | 'serial';

/**
 * Console tickets: a WebSocket from a browser cannot carry an Authorization header, so an
 * authenticated POST hands out a random ticket that opens one console of one instance, once,
 * within TICKET_TTL_MS. Kept in memory: a restarted server has none, which is what a ticket should be.
 */
export class ConsoleTickets {
  private readonly tickets = new Map<string, { instance: string; console: ConsoleKind; expiresAt: number }>();

  issue(instance: string, kind: ConsoleKind = 'vnc', now = Date.now()): { ticket: string; expiresAt: number } {
    this.sweep(now);
    const ticket = randomBytes(32).toString('base64url');
    const expiresAt = now + TICKET_TTL_MS;
    this.tickets.set(ticket, { instance, console: kind, expiresAt });
    return { ticket, expiresAt };
  }

  /** Uses up a ticket: true only for a known, unexpired ticket issued for this instance and this console. */
  redeem(ticket: string, instance: string, kind: ConsoleKind = 'vnc', now = Date.now()): boolean {
    const t = this.tickets.get(ticket);
    if (!t) return false;
    this.tickets.delete(ticket);
    return t.instance === instance && t.console === kind && t.expiresAt > now;
  }

  private sweep(now: number): void {
    for (const [k, t] of this.tickets) if (t.expiresAt <= now) this.tickets.delete(k);
  }
}

const Ticket = z.object({
  ticket: z.string(),
  expiresAt: z.number().describe('epoch ms; the ticket opens one WebSocket before then'),
  console: z.enum(['vnc', 'serial']).describe('the console this ticket opens'),
  path: z.string().describe('the WebSocket to open: RFB over binary messages for vnc (as noVNC speaks it); terminal bytes for serial'),
});

const TicketRequest = z.strictObject({
  console: z.enum(['vnc', 'serial']).default('vnc').describe('vnc (default): the graphical console; serial: the serial line (virsh console)'),
});

/** POST /instances/:name/console-ticket, under the bearer token. */
export function ticketRoutes(tickets: ConsoleTickets, resolve: VncResolver, resolveSerial: SerialResolver,
  /** Refuses (as missing) an instance of another project than the request's. */
  visible: (req: ActorRequest, name: string) => void = () => undefined): FastifyPluginAsyncZod {
  return async (app) => {
    app.post('/instances/:name/console-ticket', {
      schema: {
        tags: ['instances'], operationId: 'consoleTicket', params: NameParams, body: optionalBody(TicketRequest), response: { 201: Ticket, ...errors(400, 404) },
        summary: `a single-use ticket (valid ${TICKET_TTL_MS / 1000} s) for one console WebSocket: ${API_PREFIX}/instances/{name}/vnc?ticket=T ` +
          `or, with {"console": "serial"}, ${API_PREFIX}/instances/{name}/serial?ticket=T`,
      },
    }, async (req, reply) => {
      const { name } = req.params;
      const kind: ConsoleKind = req.body?.console ?? 'vnc';
      // 404 for an unknown instance (or another project's), 400 for one without that console now, before any ticket exists.
      visible(req, name);
      if (kind === 'vnc') await resolve(name);
      else await resolveSerial(name);
      const t = tickets.issue(name, kind);
      return reply.code(201).send({ ...t, console: kind, path: `${API_PREFIX}/instances/${encodeURIComponent(name)}/${kind}?ticket=${t.ticket}` });
    });
  };
}
