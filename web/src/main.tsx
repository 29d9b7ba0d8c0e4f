import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { call, clearToken, currentSession, login, logout, setProject, setToken, unauthorized, ApiError, type Actor, type Session } from './api';
import { Instances } from './instances';
import { CreateForm } from './create';
import { InstanceDetail } from './detail';
import { Hosts } from './hosts';
import { Topology } from './topology';
import { Networks, Volumes } from './storage';
import { Shares } from './shares';
import { LoadBalancers } from './loadbalancers';
import { ProjectBar } from './project';
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

/** Two ways in: an API token (kept in this tab), or a user name and password (an HttpOnly session cookie). */
function Login({ onIn }: { onIn: (actor: Actor) => void }) {
  const [token, setT] = useState('');
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const failed = (err: unknown, what: string) =>
    setError(err instanceof ApiError && err.status === 401 ? what : err instanceof ApiError ? err.message : `Could not reach kumo: ${(err as Error).message}`);
  const withToken = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const s = await call<Session>('GET', '/session', undefined, token.trim());
      setToken(token.trim());
      onIn(s.actor);
    } catch (err) {
      failed(err, 'That token is not valid.');
    }
  };
  const withPassword = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      onIn((await login(user.trim(), password)).actor);
    } catch (err) {
      failed(err, 'The user name or password is wrong.');
    }
  };
  return (
    <main class="login">
      <h1>kumo</h1>
      <form onSubmit={withToken}>
        <label>API token
          <input name="token" type="password" autocomplete="off" placeholder="kumo_…" value={token} onInput={(e) => setT((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit">Log in</button>
        <p class="hint">The admin token is printed by the first <code>kumo serve</code>; <code>kumo token create NAME</code> makes more. It is kept in this tab only.</p>
      </form>
      <form onSubmit={withPassword}>
        <label>User
          <input name="user" autocomplete="username" value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} />
        </label>
        <label>Password
          <input name="login-password" type="password" autocomplete="current-password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit" name="login-user">Log in as user</button>
        <p class="hint">Users are made on the server: <code>kumo user create NAME --project P --role member</code>.</p>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
    </main>
  );
}

function App() {
  /** Who this tab acts as; undefined while it asks the server (a token or a session cookie may still be good). */
  const [actor, setActor] = useState<Actor | null | undefined>(undefined);
  /** The project shown: the actor's own, or an admin's pick in the switcher. */
  const [project, setShownProject] = useState<string | undefined>();
  const route = useRoute();
  useEffect(() => {
    void currentSession().then((s) => setActor(s?.actor ?? null));
    const out = () => { clearToken(); setProject(undefined); setShownProject(undefined); setActor(null); };
    unauthorized.addEventListener('401', out);
    return () => unauthorized.removeEventListener('401', out);
  }, []);
  if (actor === undefined) return <main class="login"><p>…</p></main>;
  if (actor === null) return <Login onIn={setActor} />;
  const here = project ?? actor.project;
  const switchTo = (name: string) => {
    setProject(name === actor.project ? undefined : name);
    setShownProject(name);
  };
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
        <nav>{nav('#/instances', 'Instances')}{nav('#/create', 'Create')}{nav('#/networks', 'Networks')}{nav('#/volumes', 'Volumes')}{nav('#/shares', 'Shares')}{nav('#/loadbalancers', 'Load balancers')}{actor.role === 'admin' && nav('#/hosts', 'Hosts')}{nav('#/topology', 'Topology')}</nav>
        <span class="actor" data-project={actor.project} data-role={actor.role}>{actor.name} · {actor.role} of {actor.project}</span>
        <button class="link" onClick={() => { void logout().then(() => { setShownProject(undefined); setActor(null); }); }}>Log out</button>
      </header>
      <ProjectBar actor={actor} project={here} onSwitch={switchTo} />
      {/* Keyed by project: a switch remounts the page, which then loads that project's lists. */}
      <main key={here}>{page}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
