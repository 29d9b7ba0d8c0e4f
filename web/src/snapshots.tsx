import { useState } from 'preact/hooks';
import { call, type Snapshot } from './api';
import { useAction, useList } from './hooks';

/** An instance's snapshots (`kumo snapshot`): take one (named or not), go back to one, delete one. */
export function Snapshots({ instance }: { instance: string }) {
  const base = `/instances/${encodeURIComponent(instance)}/snapshots`;
  const { rows, error, reload } = useList<Snapshot>(base);
  const action = useAction(reload);
  const [name, setName] = useState('');

  const create = async (e: Event) => {
    e.preventDefault();
    const n = name.trim();
    if (await action.run('snapshot', () => call('POST', base, n ? { name: n } : undefined))) setName('');
  };
  const revert = (s: string) => {
    if (confirm(`Go back to snapshot ${s}? What changed since is lost.`)) void action.run(`revert ${s}`, () => call('POST', `${base}/${encodeURIComponent(s)}/revert`));
  };
  const remove = (s: string) => {
    if (confirm(`Delete snapshot ${s}?`)) void action.run(`delete ${s}`, () => call('DELETE', `${base}/${encodeURIComponent(s)}`));
  };

  return (
    <div class="snapshots">
      {(error || action.error) && <p class="error" role="alert">{action.error || error}</p>}
      <form class="inline-form row" onSubmit={(e) => void create(e)}>
        <input name="snapshot-name" placeholder="name (default: the time)" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <button class="primary" type="submit" name="snapshot-create" disabled={action.busy !== ''}>{action.busy === 'snapshot' ? 'Taking snapshot…' : 'Take snapshot'}</button>
      </form>
      {!rows ? <p>Loading…</p> : rows.length === 0 ? <p class="hint">No snapshots. A running instance's snapshot includes its memory.</p> : (
        <table class="snapshots">
          <thead><tr><th>Name</th><th>Taken</th><th>State</th><th>Memory</th><th>Actions</th></tr></thead>
          <tbody>{rows.map((s) => (
            <tr key={s.name} data-snapshot={s.name}>
              <td>{s.name}</td><td>{new Date(s.creationTime * 1000).toLocaleString()}</td><td>{s.state}</td><td>{s.memory ? 'yes' : 'no'}</td>
              <td class="actions">{action.busy.endsWith(` ${s.name}`) ? <em>{action.busy}…</em> : <>
                <button name="revert" onClick={() => revert(s.name)}>revert</button>
                <button class="danger" name="delete" onClick={() => remove(s.name)}>delete</button>
              </>}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
    </div>
  );
}
