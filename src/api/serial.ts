import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { Context } from '../service/context.js';
import { ConsoleService, openSerial, type OpenedProcess, type SerialTarget } from '../service/consoles.js';
import { Unauthorized } from './auth.js';
import type { SerialResolver } from './deps.js';
import { API_PREFIX } from './schemas.js';
import { TICKET_TTL_MS, type ConsoleTickets } from './tickets.js';
import { SocketToSink, streamToSocket } from './ws-relay.js';

export function instanceSerial(ctx: Context): SerialResolver {
  const consoles = new ConsoleService(ctx);
  return (name) => consoles.serialTarget(name, `start it first: POST ${API_PREFIX}/instances/${name}/start`);
}

/** How long virsh console gets to leave after SIGHUP before it is killed. */
const KILL_AFTER_MS = 2000;

/**
 * GET /instances/:name/serial?ticket=T upgraded to a WebSocket: `virsh -c URI console NAME
 * --force` in a pseudo-terminal (virsh console needs a TTY). Binary messages from the browser are
 * typed into it; a text message is a JSON resize ({"cols": N, "rows": N}); what the guest prints
 * comes back as binary messages (UTF-8). Closing either side ends the other: a closed WebSocket
 * hangs up the terminal (and kills virsh if it lingers), an ended virsh closes the WebSocket.
 * The ticket is checked before the upgrade, as for VNC.
 */
export function serialProxyRoutes(tickets: ConsoleTickets, resolve: SerialResolver): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Params: { name: string }; Querystring: { ticket?: string } }>('/instances/:name/serial', {
      websocket: true,
      schema: { hide: true },
      onRequest: async (req: FastifyRequest<{ Params: { name: string }; Querystring: { ticket?: string } }>) => {
        const ticket = req.query.ticket;
        const fix = `get one from POST ${API_PREFIX}/instances/${req.params.name}/console-ticket with {"console": "serial"} and connect within ${TICKET_TTL_MS / 1000} s`;
        if (!ticket) throw new Unauthorized('this console needs a ticket (?ticket=T)', fix);
        if (!tickets.redeem(ticket, req.params.name, 'serial')) {
          throw new Unauthorized('the console ticket is not valid: unknown, already used, expired, for another instance or for another console', fix);
        }
      },
    }, (socket, req) => {
      void relaySerial(socket, req.params.name, resolve, req);
    });
  };
}

/** A text message's {"cols": N, "rows": N}, when it is one with sane numbers. */
function parseResize(text: string): { cols: number; rows: number } | undefined {
  try {
    const r = JSON.parse(text) as { cols?: unknown; rows?: unknown };
    const cols = Number(r.cols);
    const rows = Number(r.rows);
    if (Number.isInteger(cols) && Number.isInteger(rows) && cols > 0 && rows > 0 && cols <= 1000 && rows <= 1000) return { cols, rows };
  } catch { /* not a resize: ignored */ }
  return undefined;
}

async function relaySerial(ws: WebSocket, name: string, resolve: SerialResolver, req: FastifyRequest): Promise<void> {
  let pty: OpenedProcess | undefined;
  let exited = false;
  let closed = false;
  const toPty = new SocketToSink(ws);
  let size = { cols: 80, rows: 24 };
  const hangUp = (p: OpenedProcess) => {
    p.kill('SIGHUP');
    const t = setTimeout(() => { if (!exited) p.kill('SIGKILL'); }, KILL_AFTER_MS);
    t.unref();
  };
  const end = (why?: string) => {
    if (closed) return;
    closed = true;
    if (pty && !exited) hangUp(pty);
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(why ? 1011 : 1000, why?.slice(0, 120));
  };
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    if (closed) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!isBinary) {
      const resize = parseResize(buf.toString('utf8'));
      if (resize) {
        size = resize;
        pty?.resize(resize.cols, resize.rows);
      }
      return;
    }
    toPty.write(buf);
  });
  ws.on('close', () => end());
  ws.on('error', () => end()); // e.g. a message over WS_MAX_PAYLOAD: ws has closed it with 1009

  let target: SerialTarget;
  try {
    target = await resolve(name);
  } catch (e) {
    end((e as Error).message);
    return;
  }
  if (closed) return;
  try {
    pty = await openSerial(target, size);
  } catch (e) {
    end(`could not start virsh console: ${(e as Error).message}`);
    return;
  }
  const p = pty;
  if (closed) {
    hangUp(p); // the browser left while virsh was starting
    return;
  }
  req.log.info({ instance: name, pid: p.pid }, 'serial console opened');
  // A slow browser pauses the terminal (and so virsh) instead of filling memory.
  streamToSocket(p.stream, ws);
  p.stream.on('error', () => undefined); // the terminal's end is reported by exit below
  void p.exit.then(({ code }) => {
    exited = true;
    req.log.info({ instance: name, exitCode: code }, 'serial console ended');
    end(code ? `virsh console exited ${code}` : undefined);
  });
  toPty.attach(p.stream);
}
