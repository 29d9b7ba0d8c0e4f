import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { call, watchEvents, type Instance, type Operation } from './api';

const ACTIONS: Record<string, string[]> = {
  running: ['stop', 'reboot', 'delete'],
  'shut off': ['start', 'delete'],
  crashed: ['start', 'delete'],
  paused: ['stop', 'delete'],
};

/**
 * Every instance with its live state: refreshed on each event of /api/v1/events (operations and
 * resource changes), and every few seconds besides, since a guest can change state by itself.
 */
export function Instances() {
  const [list, setList] = useState<Instance[] | undefined>();
  const [ops, setOps] = useState<Record<string, Operation>>({});
  const [busy, setBusy] = useState<Record<string, string>>({});
  const [error, setError] = useState('');
  const [live, setLive] = useState(false);
  const pending = useRef<number | undefined>();

  const refresh = useCallback(async () => {
    try {
      setList(await call<Instance[]>('GET', '/instances'));
    } catch (e) {
      setError((e as Error).message);
    }
  }, []);

  useEffect(() => {
    void refresh();
    const stop = watchEvents((e) => {
      if (e.operation) setOps((o) => ({ ...o, [e.operation!.target]: e.operation! }));
      // Coalesce bursts of events into one reload.
      clearTimeout(pending.current);
      pending.current = window.setTimeout(() => void refresh(), 200);
    }, setLive);
    const timer = setInterval(() => void refresh(), 5000);
    return () => { stop(); clearInterval(timer); clearTimeout(pending.current); };
  }, [refresh]);

  const act = async (name: string, action: string) => {
    if (action === 'delete' && !confirm(`Delete ${name} with its disks?`)) return;
    setBusy((b) => ({ ...b, [name]: action }));
    setError('');
    try {
      if (action === 'delete') await call('DELETE', `/instances/${encodeURIComponent(name)}`);
      else await call('POST', `/instances/${encodeURIComponent(name)}/${action}`);
    } catch (e) {
      setError(`${action} ${name}: ${(e as Error).message}`);
    } finally {
      setBusy((b) => { const { [name]: _, ...rest } = b; return rest; });
      void refresh();
    }
  };

  return (
    <section>
      <h2>Instances <span class={`live ${live ? 'on' : ''}`} title="live updates">{live ? '● live' : '○ connecting'}</span></h2>
      {error && <p class="error" role="alert">{error}</p>}
      {!list ? <p>Loading…</p> : list.length === 0 ? <p>No instances yet. <a href="#/create">Create one</a>.</p> : (
        <table class="instances">
          <thead><tr><th>Name</th><th>State</th><th>Host</th><th>IPs</th><th>Image</th><th>Size</th><th>Actions</th></tr></thead>
          <tbody>
            {list.map((i) => {
              const op = ops[i.name];
              return (
                <tr key={i.name} data-instance={i.name}>
                  <td><a href={`#/instances/${encodeURIComponent(i.name)}`}>{i.name}</a></td>
                  <td><span class={`state s-${i.state.replace(' ', '-')}`} data-state={i.state} title={`${i.stateSource}, ${new Date(i.observedAt).toLocaleTimeString()}`}>{i.state}</span>
                    {op?.state === 'running' && <small class="op"> {op.kind} {op.step ?? ''}…</small>}</td>
                  <td>{i.host}{i.ha ? <small title="highly available: started on another hypervisor if its host dies"> HA</small> : null}</td>
                  <td>{i.nics.map((n) => n.ipv4).filter(Boolean).join(', ') || '–'}</td>
                  <td>{i.image}</td>
                  <td>{i.vcpus} vCPU · {i.ramMiB} MiB · {i.diskGiB} GiB{i.dataDisks.length ? ` + ${i.dataDisks.map((g) => `${g} GiB`).join(' + ')}` : ''}</td>
                  <td class="actions">
                    {busy[i.name] ? <em>{busy[i.name]}…</em> : (ACTIONS[i.state] ?? ['delete']).map((a) => (
                      <button key={a} class={a === 'delete' ? 'danger' : ''} onClick={() => void act(i.name, a)}>{a}</button>
                    ))}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
