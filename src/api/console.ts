import type { Duplex } from 'node:stream';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { Context } from '../service/context.js';
import { ConsoleService, connectVnc } from '../service/consoles.js';
import { Unauthorized } from './auth.js';
import type { VncResolver } from './deps.js';
import { API_PREFIX } from './schemas.js';
import { TICKET_TTL_MS, type ConsoleTickets } from './tickets.js';
import { SocketToSink, streamToSocket } from './ws-relay.js';

export function instanceVnc(ctx: Context): VncResolver {
  const consoles = new ConsoleService(ctx);
  return (name) => consoles.vncTarget(name, `start it first: POST ${API_PREFIX}/instances/${name}/start`);
}

/**
 * GET /instances/:name/vnc?ticket=T upgraded to a WebSocket: bytes both ways between the
 * browser (noVNC) and the instance's VNC server (its unix socket). Not behind the bearer token (a
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
  const toVnc = new SocketToSink(ws);
  const end = (why?: string) => {
    if (closed) return;
    closed = true;
    tcp?.destroy();
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(why ? 1011 : 1000, why?.slice(0, 120));
  };
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    if (closed) return;
    toVnc.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
  });
  ws.on('close', () => end());
  ws.on('error', () => end()); // e.g. a message over WS_MAX_PAYLOAD: ws has closed it with 1009

  let stream: Duplex;
  try {
    const target = await resolve(name);
    if (closed) return;
    stream = await connectVnc(target);
  } catch (e) {
    end((e as Error).message);
    return;
  }
  if (closed) {
    stream.destroy(); // the browser left while the connection was being opened
    return;
  }
  tcp = stream;
  toVnc.attach(stream);
  // A slow browser slows the VNC server down (the stream is paused) instead of filling memory.
  streamToSocket(stream, ws);
  stream.on('end', () => end());
  stream.on('close', () => end());
  stream.on('error', (e) => {
    req.log.warn({ err: e, instance: name }, 'VNC connection failed');
    end(`VNC connection failed: ${e.message}`);
  });
}
