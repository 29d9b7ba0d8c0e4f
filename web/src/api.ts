// The dashboard's only way to the server: the REST API under /api/v1, with either a bearer
// token kept in sessionStorage (gone with the tab; never in localStorage or a cookie) or the
// session cookie a password login set (HttpOnly: this script never sees it). With the cookie,
// every request that changes something carries the session's CSRF value in X-Kumo-CSRF.

const KEY = 'kumo.token';
export const API = '/api/v1';

export const getToken = (): string | null => sessionStorage.getItem(KEY);
export const setToken = (t: string): void => sessionStorage.setItem(KEY, t);
export const clearToken = (): void => sessionStorage.removeItem(KEY);

/** The session's CSRF value (from the login or GET /session), in memory only. */
let csrf: string | undefined;
export const setCsrf = (value: string | undefined): void => { csrf = value; };

/** The project an admin picked in the switcher (sent as ?project=); undefined: the actor's own. */
let project: string | undefined;
export const setProject = (name: string | undefined): void => { project = name; };

/** `path` with the admin's pick of project, if any (the server refuses ?project= from anyone else). */
export function inProject(path: string): string {
  return project ? `${path}${path.includes('?') ? '&' : '?'}project=${encodeURIComponent(project)}` : path;
}

/** Who the dashboard acts as: shown in the header. */
export interface Actor { kind: 'machine' | 'token' | 'user'; name: string; project: string; role: 'admin' | 'member' | 'reader' }
export interface Session { actor: Actor; csrf?: string; expiresAt?: number }

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly fix?: string) {
    super(message);
  }
}

/** Fired when the server refuses the token or session: the app goes back to the login page. */
export const unauthorized = new EventTarget();

/** The headers that authenticate a request: the bearer token, or (with the cookie the browser sends) the CSRF value for writes. */
function authHeaders(method: string, token: string | null): Record<string, string> {
  if (token) return { authorization: `Bearer ${token}` };
  return csrf && method !== 'GET' ? { 'x-kumo-csrf': csrf } : {};
}

export async function call<T>(method: string, path: string, body?: unknown, token = getToken()): Promise<T> {
  const headers: Record<string, string> = authHeaders(method, token);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(API + inProject(path), { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  const json: unknown = text ? JSON.parse(text) : undefined;
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; fix?: string } } | undefined)?.error;
    if (res.status === 401) unauthorized.dispatchEvent(new Event('401'));
    throw new ApiError(res.status, e?.code ?? String(res.status), e?.message ?? res.statusText, e?.fix);
  }
  return json as T;
}

/** Logs in with a user name and password: the server sets the session cookie. */
export async function login(name: string, password: string): Promise<Session> {
  const s = await call<Session>('POST', '/login', { name, password }, null);
  setCsrf(s.csrf);
  return s;
}

/** Who this tab acts as (token or cookie), or null when neither works. */
export async function currentSession(): Promise<Session | null> {
  const res = await fetch(`${API}/session`, { headers: authHeaders('GET', getToken()) });
  if (!res.ok) return null;
  const s = await res.json() as Session;
  setCsrf(s.csrf);
  return s;
}

/** Ends the session (the cookie stops working on the server) or forgets the token. */
export async function logout(): Promise<void> {
  if (!getToken() && csrf) await call('POST', '/logout').catch(() => undefined);
  clearToken();
  setCsrf(undefined);
  setProject(undefined);
}

export interface Nic { mac: string; network: string; ipv4?: string }
export interface Instance {
  name: string; host: string; state: string; image: string; flavor?: string; ha?: boolean;
  vcpus: number; ramMiB: number; diskGiB: number; networks: string[]; nics: Nic[];
  dataDisks: number[]; vnc?: string; drift: string[]; createdAt: string;
  /** When the state was learnt, and from what: libvirt's events, its listing, or a question for this read. */
  observedAt: string; stateSource: 'events' | 'listing' | 'asked';
  /** On the one-instance read only: ready by its image's check, and what cloud-init printed. */
  readiness?: {
    check: string; status: 'ready' | 'booting' | 'failed' | 'stopped'; detail: string;
    cloudInit?: { status: 'running' | 'done' | 'failed'; version?: string; errors: string[] };
  };
}
export interface Image { name: string; os: string }
export interface Flavor { name: string; vcpus: number; ramMiB: number; diskGiB: number }
export interface Network { name: string; mode: string; cidr?: string; active: boolean }
export interface Host {
  name: string; uri?: string; roles: string[]; up: boolean; cpus?: number; memoryMiB?: number;
  allocatedVcpus: number; allocatedMiB: number; instances: number;
  /** The host-failure story (HA watcher): down, fenced, what moved where. */
  ha?: { state: 'up' | 'down' | 'fenced' | 'unfenced'; downAt?: string; fencedAt?: string; rejoinedAt?: string; fenceError?: string; moved: { instance: string; to: string; at: string }[] };
}
export interface Snapshot { instance: string; name: string; creationTime: number; state: string; memory: boolean; parent?: string }
export interface Share {
  name: string; path: string; networks: string[]; readOnly: boolean; server?: string;
  mounts: { network: string; source: string; command: string }[];
}
export interface LoadBalancer {
  name: string; host: string; network: string; instances: string[]; backendPort: number; running: boolean; wafRunning?: boolean;
  frontend: { address: string; port: number }; waf: { enabled: boolean; paranoia: number } | null;
  backends: { instance: string; address?: string; status: string; check?: string }[];
}
export interface WafEvent { time: string; client: string; method: string; uri: string; status: number; blocked: boolean; ruleIds: string[]; messages: string[] }
/** A project's caps (a quota left out has none) and what it uses now: GET /projects/NAME. */
export interface Project { name: string; limits: Partial<Record<string, number>>; use: Record<string, number> }
export interface Operation { id: string; kind: string; target: string; state: string; step?: string; error?: { message: string } }
export interface Reading { at: number; state: string; cpuPct?: number; rxBps?: number; txBps?: number; memRssKiB?: number }

export interface KumoEvent { type: 'operation' | 'resource' | 'reset'; seq?: number; operation?: Operation; resource?: string; name?: string; action?: string }

/**
 * /api/v1/events read with fetch (EventSource cannot send the Authorization header; a session's cookie goes by itself), reconnecting
 * with ?after=LAST-ID so nothing is missed. Returns a function that stops it.
 */
export function watchEvents(onEvent: (e: KumoEvent) => void, onState?: (connected: boolean) => void): () => void {
  let stopped = false;
  /** The last event's SSE id ("RUN-SEQ"): a reconnect replays what came after it, or says reset. */
  let last: string | undefined;
  let ac: AbortController | undefined;
  const run = async () => {
    while (!stopped) {
      ac = new AbortController();
      try {
        const q = inProject(last !== undefined ? `?after=${encodeURIComponent(last)}` : '');
        const token = getToken();
        const res = await fetch(`${API}/events${q}`, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: ac.signal });
        if (res.status === 401) { unauthorized.dispatchEvent(new Event('401')); return; }
        if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
        onState?.(true);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const lines = block.split('\n');
            const id = lines.find((l) => l.startsWith('id: '))?.slice(4);
            if (id) last = id;
            const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (!data) continue;
            const e = JSON.parse(data) as KumoEvent;
            // A reset (the server restarted, or this client fell too far behind): every page reloads on any event.
            if (lines.some((l) => l === 'event: reset')) e.type = 'reset';
            onEvent(e);
          }
        }
      } catch {
        if (stopped) return;
      }
      onState?.(false);
      await new Promise((r) => setTimeout(r, 3000));
    }
  };
  void run();
  return () => { stopped = true; ac?.abort(); };
}

export const fmtBytes = (n: number): string => {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
};
