import type { Network } from './api';
import { useList } from './hooks';

interface NetworkRow extends Network { gateway?: string; bridge?: string; autostart: boolean; instances: string[] }
interface Volume { name: string; sizeGiB: number; instance?: string; device?: string; drift: string[] }

export function Networks() {
  const { rows, error } = useList<NetworkRow>('/networks');
  return (
    <section>
      <h2>Networks</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {!rows ? <p>Loading…</p> : (
        <table class="networks">
          <thead><tr><th>Name</th><th>Mode</th><th>Subnet</th><th>Bridge</th><th>Active</th><th>Instances</th></tr></thead>
          <tbody>{rows.map((n) => (
            <tr key={n.name} data-network={n.name}>
              <td>{n.name}</td><td>{n.mode}</td><td>{n.cidr ?? '–'}</td><td>{n.bridge ?? '–'}</td>
              <td>{n.active ? 'yes' : 'no'}{n.autostart ? ' (autostart)' : ''}</td><td>{n.instances.join(', ') || '–'}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
    </section>
  );
}

export function Volumes() {
  const { rows, error } = useList<Volume>('/volumes');
  return (
    <section>
      <h2>Volumes</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {!rows ? <p>Loading…</p> : rows.length === 0 ? <p>No volumes. <code>kumo volume create NAME --size GiB</code> makes one.</p> : (
        <table class="volumes">
          <thead><tr><th>Name</th><th>Size</th><th>Attached to</th><th>Notes</th></tr></thead>
          <tbody>{rows.map((v) => (
            <tr key={v.name} data-volume={v.name}>
              <td>{v.name}</td><td>{v.sizeGiB} GiB</td><td>{v.instance ? `${v.instance} (${v.device ?? '?'})` : '–'}</td><td>{v.drift.join('; ')}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
    </section>
  );
}
