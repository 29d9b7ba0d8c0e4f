import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call, clearToken, getToken, setToken, unauthorized, ApiError } from './api';
import { Instances } from './instances';
import { CreateForm } from './create';
import { InstanceDetail } from './detail';
import { Hosts } from './hosts';
import { Topology } from './topology';
import { Networks, Volumes } from './storage';
import { Shares } from './shares';
import { LoadBalancers } from './loadbalancers';
import './style.css';

/** Hash routes (#/instances, #/instances/NAME, #/create, #/shares, …): the server serves one index.html. */
function useRoute(): string {
  const [hash, setHash] = useState(location.hash || '#/instances');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/instances');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash.slice(1);
}

function Login({ onIn }: { onIn: () => void }) {
  const [token, setT] = useState('');
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      await call('GET', '/hosts', undefined, token.trim());
      setToken(token.trim());
      onIn();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'That token is not valid.' : `Could not reach kumo: ${(err as Error).message}`);
    }
  };
  return (
    <main class="login">
      <h1>kumo</h1>
      <form onSubmit={submit}>
        <label>API token
          <input name="token" type="password" autocomplete="off" placeholder="kumo_…" value={token} onInput={(e) => setT((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit">Log in</button>
        {error && <p class="error" role="alert">{error}</p>}
        <p class="hint">The admin token is printed by the first <code>kumo serve</code>; <code>kumo token create NAME</code> makes more. It is kept in this tab only.</p>
      </form>
    </main>
  );
}

function App() {
  const [loggedIn, setLoggedIn] = useState(getToken() !== null);
  const route = useRoute();
  useEffect(() => {
    const out = () => { clearToken(); setLoggedIn(false); };
    unauthorized.addEventListener('401', out);
    return () => unauthorized.removeEventListener('401', out);
  }, []);
  if (!loggedIn) return <Login onIn={() => setLoggedIn(true)} />;
  const detail = /^\/instances\/([^/]+)$/.exec(route);
  let page;
  if (detail) page = <InstanceDetail name={decodeURIComponent(detail[1]!)} />;
  else if (route === '/create') page = <CreateForm />;
  else if (route === '/hosts') page = <Hosts />;
  else if (route === '/topology') page = <Topology />;
  else if (route === '/networks') page = <Networks />;
  else if (route === '/volumes') page = <Volumes />;
  else if (route === '/shares') page = <Shares />;
  else if (route === '/loadbalancers') page = <LoadBalancers />;
  else page = <Instances />;
  const nav = (href: string, label: string) => <a href={href} class={route.startsWith(href.slice(1)) ? 'active' : ''}>{label}</a>;
  return (
    <>
      <header>
        <strong>kumo</strong>
        <nav>{nav('#/instances', 'Instances')}{nav('#/create', 'Create')}{nav('#/networks', 'Networks')}{nav('#/volumes', 'Volumes')}{nav('#/shares', 'Shares')}{nav('#/loadbalancers', 'Load balancers')}{nav('#/hosts', 'Hosts')}{nav('#/topology', 'Topology')}</nav>
        <button class="link" onClick={() => { clearToken(); setLoggedIn(false); }}>Log out</button>
      </header>
      <main>{page}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
