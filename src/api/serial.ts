import { spawn as spawnPty, type IPty } from '@lydell/node-pty';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { Context } from '../service/context.js';
import { InstanceService } from '../service/instances.js';
import { invalid } from '../model/errors.js';
import { Unauthorized } from './auth.js';
import { TICKET_TTL_MS, type ConsoleTickets } from './console.js';
import { API_PREFIX } from './schemas.js';

/** Where an instance's serial console is: the libvirt that runs it (virsh console connects there). */
export interface SerialTarget {
  uri: string;
}

/** Finds a running instance's libvirt; the server asks InstanceService, tests may stand in. */
export type SerialResolver = (name: string) => Promise<SerialTarget>;

export function instanceSerial(ctx: Context): SerialResolver {
  return async (name) => {
    const inst = await new InstanceService(ctx).get(name); // 404 for an unknown instance
    if (inst.state !== 'running') throw invalid(`instance "${name}" has no serial console now (state ${inst.state})`, `start it first: POST ${API_PREFIX}/instances/${name}/start`);
    return { uri: ctx.virshOf(name).uri };
  };
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

async function relaySerial(ws: WebSocket, name: string, resolve: SerialResolver, req: FastifyRequest): Promise<void> {
  let pty: IPty | undefined;
  let exited = false;
  let closed = false;
  const queued: string[] = [];
  let size = { cols: 80, rows: 24 };
  const end = (why?: string) => {
    if (closed) return;
    closed = true;
    if (pty && !exited) {
      const p = pty;
      try { p.kill('SIGHUP'); } catch { /* gone already */ }
      const t = setTimeout(() => { if (!exited) { try { p.kill('SIGKILL'); } catch { /* gone already */ } } }, KILL_AFTER_MS);
      t.unref();
    }
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(why ? 1011 : 1000, why?.slice(0, 120));
  };
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    if (closed) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!isBinary) {
      try {
        const r = JSON.parse(buf.toString('utf8')) as { cols?: unknown; rows?: unknown };
        const cols = Number(r.cols);
        const rows = Number(r.rows);
        if (Number.isInteger(cols) && Number.isInteger(rows) && cols > 0 && rows > 0 && cols <= 1000 && rows <= 1000) {
          size = { cols, rows };
          pty?.resize(cols, rows);
        }
      } catch { /* not a resize: ignored */ }
      return;
    }
    const text = buf.toString('utf8');
    if (pty) pty.write(text);
    else queued.push(text);
  });
  ws.on('close', () => end());
  ws.on('error', () => end());

  let target: SerialTarget;
  try {
    target = await resolve(name);
  } catch (e) {
    end((e as Error).message);
    return;
  }
  if (closed) return;
  try {
    pty = spawnPty('virsh', ['-c', target.uri, 'console', name, '--force'], {
      name: 'xterm-256color', cols: size.cols, rows: size.rows, env: { ...process.env, TERM: 'xterm-256color' } as Record<string, string>,
    });
  } catch (e) {
    end(`could not start virsh console: ${(e as Error).message}`);
    return;
  }
  const p = pty;
  req.log.info({ instance: name, pid: p.pid }, 'serial console opened');
  p.onData((d) => {
    if (ws.readyState === ws.OPEN) ws.send(Buffer.from(d, 'utf8'), { binary: true });
  });
  p.onExit(({ exitCode }) => {
    exited = true;
    req.log.info({ instance: name, exitCode }, 'serial console ended');
    end(exitCode ? `virsh console exited ${exitCode}` : undefined);
  });
  for (const t of queued.splice(0)) p.write(t);
}
