import { useEffect, useState } from 'preact/hooks';
import { call, type Flavor, type Image, type Network, type Operation } from './api';

interface Draft {
  name: string; image: string; flavor: string; password: string; password2: string; network: string; disk: string;
}

/**
 * The wizard's questions as one form (image, flavor, root password, network, extra disk), then
 * its confirmation step: a summary and an explicit "Create". The server checks everything again.
 */
export function CreateForm() {
  const [images, setImages] = useState<Image[]>([]);
  const [flavors, setFlavors] = useState<Flavor[]>([]);
  const [networks, setNetworks] = useState<Network[]>([]);
  const [d, setD] = useState<Draft>({ name: '', image: '', flavor: '', password: '', password2: '', network: '', disk: '' });
  const [confirming, setConfirming] = useState(false);
  const [ha, setHa] = useState(false);
  const [error, setError] = useState('');
  const [sending, setSending] = useState(false);

  useEffect(() => {
    void Promise.all([call<Image[]>('GET', '/images'), call<Flavor[]>('GET', '/flavors'), call<Network[]>('GET', '/networks')])
      .then(([i, f, n]) => {
        setImages(i); setFlavors(f); setNetworks(n);
        setD((x) => ({ ...x, image: x.image || i[0]?.name || '', flavor: x.flavor || f[0]?.name || '', network: x.network || n[0]?.name || '' }));
      }, (e: Error) => setError(e.message));
  }, []);

  const set = (k: keyof Draft) => (e: Event) => setD({ ...d, [k]: (e.target as HTMLInputElement).value });
  const disk = d.disk.trim() === '' ? 0 : Number(d.disk);

  const review = (e: Event) => {
    e.preventDefault();
    setError('');
    if (!/^[a-zA-Z0-9][a-zA-Z0-9-]*$/.test(d.name)) return setError('Name: letters, digits and dashes, starting with a letter or digit.');
    if (!d.image) return setError('Choose an image.');
    if (!d.password) return setError('Give a root password.');
    if (d.password !== d.password2) return setError('The two passwords differ.');
    if (!(Number.isInteger(disk) && disk >= 0 && disk <= 2048)) return setError('Extra disk: a whole number of GiB (0 or empty for none).');
    setConfirming(true);
  };

  const create = async () => {
    setSending(true);
    setError('');
    try {
      const body = {
        name: d.name, image: d.image, password: d.password,
        ...(d.flavor ? { flavor: d.flavor } : {}),
        ...(d.network ? { networks: [d.network] } : {}),
        ...(disk > 0 ? { dataDisks: [disk] } : {}),
        ...(ha ? { ha: true } : {}),
      };
      await call<{ operation: Operation }>('POST', '/instances', body);
      location.hash = '#/instances';
    } catch (e) {
      setError((e as Error).message);
      setConfirming(false);
    } finally {
      setSending(false);
    }
  };

  const flavor = flavors.find((f) => f.name === d.flavor);
  if (confirming) {
    return (
      <section class="create">
        <h2>Create an instance: confirm</h2>
        <dl class="summary">
          <dt>Name</dt><dd>{d.name}</dd>
          <dt>Image</dt><dd>{images.find((i) => i.name === d.image)?.os ?? d.image} ({d.image})</dd>
          <dt>Flavor</dt><dd>{d.flavor}{flavor ? ` — ${flavor.vcpus} vCPU, ${flavor.ramMiB} MiB, ${flavor.diskGiB} GiB` : ''}</dd>
          <dt>Root password</dt><dd>set (not shown)</dd>
          <dt>Network</dt><dd>{d.network || 'default'}</dd>
          <dt>Extra disk</dt><dd>{disk > 0 ? `${disk} GiB` : 'none'}</dd>
          {ha && <><dt>High availability</dt><dd>yes: started on another hypervisor if its host dies</dd></>}
        </dl>
        {error && <p class="error" role="alert">{error}</p>}
        <button onClick={() => setConfirming(false)} disabled={sending}>Back</button>{' '}
        <button class="primary" name="confirm" onClick={() => void create()} disabled={sending}>{sending ? 'Creating…' : 'Create'}</button>
      </section>
    );
  }
  return (
    <section class="create">
      <h2>Create an instance</h2>
      <form onSubmit={review}>
        <label>Name <input name="name" value={d.name} onInput={set('name')} required /></label>
        <label>Image (OS)
          <select name="image" value={d.image} onChange={set('image')}>
            {images.map((i) => <option key={i.name} value={i.name}>{i.os} ({i.name})</option>)}
          </select>
        </label>
        <label>Flavor
          <select name="flavor" value={d.flavor} onChange={set('flavor')}>
            {flavors.map((f) => <option key={f.name} value={f.name}>{f.name}: {f.vcpus} vCPU, {f.ramMiB} MiB, {f.diskGiB} GiB</option>)}
          </select>
        </label>
        <label>Root password <input name="password" type="password" autocomplete="new-password" value={d.password} onInput={set('password')} /></label>
        <label>Root password again <input name="password2" type="password" autocomplete="new-password" value={d.password2} onInput={set('password2')} /></label>
        <label>Network
          <select name="network" value={d.network} onChange={set('network')}>
            {networks.map((n) => <option key={n.name} value={n.name}>{n.name} ({n.mode}{n.cidr ? `, ${n.cidr}` : ''})</option>)}
          </select>
        </label>
        <label>Extra disk (GiB, empty for none) <input name="disk" inputMode="numeric" value={d.disk} onInput={set('disk')} /></label>
        <label><input name="ha" type="checkbox" checked={ha} onChange={(e) => setHa((e.target as HTMLInputElement).checked)} /> Highly available (restarted on another hypervisor if its host dies)</label>
        {error && <p class="error" role="alert">{error}</p>}
        <button class="primary" type="submit">Review</button>
      </form>
    </section>
  );
}
