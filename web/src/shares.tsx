import { useState } from 'preact/hooks';
import { call, type Network, type Share } from './api';
import { useAction, useList } from './hooks';

/** `kumo share`: NFS shares with their mount commands; create one for some networks, delete one. */
export function Shares() {
  const { rows, error, reload } = useList<Share>('/shares');
  const networks = useList<Network>('/networks', 30_000).rows ?? [];
  const action = useAction(reload);
  const [name, setName] = useState('');
  const [chosen, setChosen] = useState<string[]>([]);
  const [readOnly, setReadOnly] = useState(false);

  const create = async (e: Event) => {
    e.preventDefault();
    const ok = await action.run(`create ${name}`, () => call('POST', '/shares', { name, networks: chosen, readOnly }));
    if (ok) { setName(''); setChosen([]); setReadOnly(false); }
  };
  const remove = (s: string) => {
    if (confirm(`Stop serving ${s}? Its folder and files stay.`)) void action.run(`delete ${s}`, () => call('DELETE', `/shares/${encodeURIComponent(s)}`));
  };
  const toggle = (n: string) => setChosen((c) => (c.includes(n) ? c.filter((x) => x !== n) : [...c, n]));

  return (
    <section class="shares">
      <h2>Shares</h2>
      {(error || action.error) && <p class="error" role="alert">{action.error || error}</p>}
      {!rows ? <p>Loading…</p> : rows.length === 0 ? <p>No shares yet.</p> : (
        <table class="shares">
          <thead><tr><th>Name</th><th>Folder</th><th>Networks</th><th>Access</th><th>Mount (in a guest)</th><th>Actions</th></tr></thead>
          <tbody>{rows.map((s) => (
            <tr key={s.name} data-share={s.name}>
              <td>{s.name}</td><td><code>{s.path}</code></td><td>{s.networks.join(', ')}</td><td>{s.readOnly ? 'read-only' : 'read-write'}</td>
              <td>{s.mounts.length ? s.mounts.map((m) => <div key={m.network}><code>{m.command}</code></div>) : '–'}</td>
              <td class="actions">{action.busy === `delete ${s.name}` ? <em>deleting…</em>
                : <button class="danger" name="delete" onClick={() => remove(s.name)}>delete</button>}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
      <h3>New share</h3>
      <form class="inline-form" onSubmit={(e) => void create(e)}>
        <label>Name <input name="share-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required /></label>
        <fieldset>
          <legend>Networks whose instances may mount it</legend>
          {networks.map((n) => (
            <label key={n.name} class="check">
              <input type="checkbox" name="share-network" value={n.name} checked={chosen.includes(n.name)} onChange={() => toggle(n.name)} /> {n.name}{n.cidr ? ` (${n.cidr})` : ''}
            </label>
          ))}
        </fieldset>
        <label class="check"><input type="checkbox" name="share-readonly" checked={readOnly} onChange={() => setReadOnly(!readOnly)} /> read-only</label>
        <button class="primary" type="submit" disabled={action.busy !== ''}>{action.busy.startsWith('create') ? 'Creating…' : 'Create share'}</button>
      </form>
    </section>
  );
}
