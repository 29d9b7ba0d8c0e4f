import { KumoError } from '../../../model/errors.js';

/** HAProxy's runtime API answers, read into typed values. */
export type ServerStatus = 'UP' | 'DOWN' | 'MAINT' | 'DRAIN' | 'NOLB' | 'NO_CHECK' | 'UNKNOWN';

export interface ServerHealth {
  backend: string;
  server: string;
  /** address:port the server is reached at. */
  address: string;
  status: ServerStatus;
  /** "1/2" while a server is changing state (e.g. UP but 1 of 2 failed checks seen). */
  transition?: string;
  /** The last check: result code and HAProxy's description, e.g. "L4CON Connection refused". */
  checkInfo: string;
  /** Requests it has now (HAProxy's scur): a drained server is idle at 0. */
  sessions: number;
}

/** Parses `show stat` CSV into the servers of each backend (FRONTEND/BACKEND rows left out). */
export function parseShowStat(csv: string): ServerHealth[] {
  const lines = csv.split('\n').filter((l) => l.trim());
  const header = lines[0]?.replace(/^#\s*/, '').split(',');
  if (!header?.includes('pxname')) throw new KumoError('COMMAND_FAILED', `HAProxy's stats socket answered something else than show stat: ${csv.slice(0, 200)}`);
  const col = (row: string[], name: string) => row[header.indexOf(name)] ?? '';
  return lines.slice(1).map((l) => l.split(',')).filter((r) => !['FRONTEND', 'BACKEND'].includes(col(r, 'svname'))).map((r) => {
    const [word = '', transition] = col(r, 'status').split(' ');
    const known: Record<string, ServerStatus> = { UP: 'UP', DOWN: 'DOWN', MAINT: 'MAINT', DRAIN: 'DRAIN', NOLB: 'NOLB', no: 'NO_CHECK' };
    const desc = col(r, 'last_chk');
    const code = col(r, 'check_code');
    return {
      backend: col(r, 'pxname'),
      server: col(r, 'svname'),
      address: col(r, 'addr'),
      status: known[word] ?? 'UNKNOWN',
      ...(transition && /^\d+\/\d+$/.test(transition) ? { transition } : {}),
      checkInfo: [col(r, 'check_status').replace(/^\* /, ''), code, desc].filter(Boolean).join(' '),
      sessions: Number(col(r, 'scur')) || 0,
    };
  });
}
