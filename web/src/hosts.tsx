import { useEffect, useState } from 'preact/hooks';
import { call, type Host } from './api';

/** up or DOWN as libvirt answers, and what the HA watcher made of a host that went down. */
function haStatus(h: Host): string {
  const ha = h.ha?.state;
  if (ha === 'fenced') return h.up ? 'up (was fenced)' : 'DOWN, FENCED';
  if (ha === 'unfenced') return h.up ? 'up (was not fenced)' : 'DOWN, NOT FENCED';
  return h.up ? 'up' : 'DOWN';
}

export function Hosts() {
  const [hosts, setHosts] = useState<Host[] | undefined>();
  const [error, setError] = useState('');
  useEffect(() => {
    const load = () => call<Host[]>('GET', '/hosts').then(setHosts, (e: Error) => setError(e.message));
    void load();
    const t = setInterval(() => void load(), 10_000);
    return () => clearInterval(t);
  }, []);
  return (
    <section>
      <h2>Hosts</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {!hosts ? <p>Loading…</p> : (
        <table class="hosts">
          <thead><tr><th>Name</th><th>Status</th><th>Roles</th><th>CPUs (given out)</th><th>Memory (given out)</th><th>Instances</th><th>URI</th></tr></thead>
          <tbody>
            {hosts.map((h) => (
              <tr key={h.name} data-host={h.name}>
                <td>{h.name}</td>
                <td><span class={`state ${h.up ? 's-running' : 's-crashed'}`} data-ha={h.ha?.state}>{haStatus(h)}</span>
                  {h.ha?.moved.length ? <small> moved: {h.ha.moved.map((m) => `${m.instance} → ${m.to}`).join(', ')}</small> : null}</td>
                <td>{h.roles.join(', ')}</td>
                <td>{h.cpus ?? '?'} ({h.allocatedVcpus})</td>
                <td>{h.memoryMiB !== undefined ? `${h.memoryMiB} MiB` : '?'} ({h.allocatedMiB} MiB)</td>
                <td>{h.instances}</td>
                <td><code>{h.uri ?? '–'}</code></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
