import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { Duplex } from 'node:stream';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import type { Context } from '../service/context.js';
import { InstanceService } from '../service/instances.js';
import { invalid } from '../model/errors.js';
import { Unauthorized } from './auth.js';
import { API_PREFIX, errors, NameParams, optionalBody } from './schemas.js';
import type { SerialResolver } from './serial.js';

/** How long a console ticket may wait for its WebSocket: enough for a page to load noVNC, too short to leak usefully. */
export const TICKET_TTL_MS = 30_000;

/** Where an instance's VNC server listens: loopback, possibly inside a lab hypervisor's network namespace. */
export interface VncTarget {
  /** "127.0.0.1:PORT" */
  vnc: string;
  vncNetns?: string;
}

/** Which console a ticket opens: the VNC screen (noVNC) or the serial line (xterm.js). */
export type ConsoleKind = 'vnc' | 'serial';

/** Finds the VNC address of a running instance; the server asks InstanceService, tests may stand in. */
export type VncResolver = (name: string) => Promise<VncTarget>;

export function instanceVnc(ctx: Context): VncResolver {
  return async (name) => {
    const inst = await new InstanceService(ctx).get(name);
    if (!inst.vnc) throw invalid(`instance "${name}" has no VNC display now (state ${inst.state})`, `start it first: POST ${API_PREFIX}/instances/${name}/start`);
    return { vnc: inst.vnc, ...(inst.vncNetns ? { vncNetns: inst.vncNetns } : {}) };
  };
}

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
export function ticketRoutes(tickets: ConsoleTickets, resolve: VncResolver, resolveSerial: SerialResolver): FastifyPluginAsyncZod {
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
      // 404 for an unknown instance, 400 for one without that console now, before any ticket exists.
      if (kind === 'vnc') await resolve(name);
      else await resolveSerial(name);
      const t = tickets.issue(name, kind);
      return reply.code(201).send({ ...t, console: kind, path: `${API_PREFIX}/instances/${encodeURIComponent(name)}/${kind}?ticket=${t.ticket}` });
    });
  };
}

/**
 * GET /instances/:name/vnc?ticket=T upgraded to a WebSocket: bytes both ways between the
 * browser (noVNC) and the instance's VNC server on 127.0.0.1. Not behind the bearer token (a
 * browser cannot send one here): the ticket is checked before the upgrade, so a missing, used,
 * expired or foreign ticket gets a plain 401 and no WebSocket.
 */
export function vncProxyRoutes(tickets: ConsoleTickets, resolve: VncResolver): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Params: { name: string }; Querystring: { ticket?: string } }>('/instances/:name/vnc', {
      websocket: true,
      schema: { hide: true },
      onRequest: async (req: FastifyRequest<{ Params: { name: string }; Querystring: { ticket?: string } }>) => {
        const ticket = req.query.ticket;
        const fix = `get one from POST ${API_PREFIX}/instances/${req.params.name}/console-ticket and connect within ${TICKET_TTL_MS / 1000} s`;
        if (!ticket) throw new Unauthorized('this console needs a ticket (?ticket=T)', fix);
        if (!tickets.redeem(ticket, req.params.name, 'vnc')) throw new Unauthorized('the console ticket is not valid: unknown, already used, expired or for another instance', fix);
      },
    }, (socket, req) => {
      void relay(socket, req.params.name, resolve, req);
    });
  };
}

async function relay(ws: WebSocket, name: string, resolve: VncResolver, req: FastifyRequest): Promise<void> {
  // Listen at once (before any await): what the browser sends while the target is looked up is queued, not lost.
  let tcp: Duplex | undefined;
  let closed = false;
  const queued: Buffer[] = [];
  const end = (why?: string) => {
    if (closed) return;
    closed = true;
    tcp?.destroy();
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(why ? 1011 : 1000, why?.slice(0, 120));
  };
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    if (closed) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (tcp) tcp.write(buf);
    else queued.push(buf);
  });
  ws.on('close', () => end());
  ws.on('error', () => end());

  try {
    const target = await resolve(name);
    const port = Number(/^127\.0\.0\.1:(\d+)$/.exec(target.vnc)?.[1]);
    if (!(port > 0 && port < 65_536)) throw new Error(`unexpected VNC address ${target.vnc}`);
    if (closed) return;
    tcp = openTcp(port, target.vncNetns);
  } catch (e) {
    end((e as Error).message);
    return;
  }
  const stream = tcp;
  for (const b of queued.splice(0)) stream.write(b);
  stream.on('data', (chunk: Buffer) => {
    ws.send(chunk, { binary: true });
    // Slow browser: stop reading VNC until the socket drains (ws has no drain event; poll briefly).
    if (ws.bufferedAmount > 4 * 1024 * 1024) {
      stream.pause();
      const wait = setInterval(() => {
        if (closed || ws.bufferedAmount < 1024 * 1024) {
          clearInterval(wait);
          stream.resume();
        }
      }, 20);
    }
  });
  stream.on('end', () => end());
  stream.on('close', () => end());
  stream.on('error', (e) => {
    req.log.warn({ err: e, instance: name }, 'VNC connection failed');
    end(`VNC connection failed: ${e.message}`);
  });
}

/**
 * A byte stream to 127.0.0.1:PORT: directly, or inside a network namespace (a lab hypervisor's
 * VNC listens on that namespace's loopback) through `nsenter --net ... socat`, whose stdin and
 * stdout are the stream. Arguments are an array: no shell.
 */
function openTcp(port: number, netns: string | undefined): Duplex {
  if (!netns) return connect({ host: '127.0.0.1', port });
  if (!/^[A-Za-z0-9_.-]+$/.test(netns)) throw invalid(`unexpected network namespace name "${netns}"`);
  const child = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', 'socat', '-', `TCP:127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  return childStream(child);
}

/** A child's stdin/stdout as one Duplex; destroying it ends the child. */
function childStream(child: ReturnType<typeof spawn>): Duplex {
  // Duplex.from pairs a readable and a writable into one stream (Node 16.8+).
  const d = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  child.on('exit', (code) => {
    if (code && code !== 0) d.destroy(new Error(`nsenter/socat exited ${code}: ${stderr.trim().slice(0, 200)}`));
  });
  child.on('error', (e) => d.destroy(e));
  d.on('close', () => { if (child.exitCode === null) child.kill('SIGTERM'); });
  return d;
}
