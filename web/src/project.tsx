import { useEffect, useState } from 'preact/hooks';
import { call, type Actor, type Project } from './api';

/** The quotas in the order `kumo project show` prints them, with the words the bar uses. */
const QUOTAS: [string, string][] = [
  ['instances', 'instances'], ['vcpus', 'vCPUs'], ['ramMiB', 'RAM MiB'], ['diskGiB', 'disk GiB'],
  ['volumes', 'volumes'], ['networks', 'networks'], ['shares', 'shares'],
];

/**
 * The project this tab acts in and its use against its caps ("instances 1 / 1"; "–": no cap),
 * from GET /projects/NAME, which every role may read for its own project. An admin also gets a
 * switcher: the pick goes to every API call as ?project= (api.ts setProject).
 */
export function ProjectBar({ actor, project, onSwitch }: { actor: Actor; project: string; onSwitch: (name: string) => void }) {
  const [shown, setShown] = useState<Project | undefined>();
  const [names, setNames] = useState<string[]>([]);
  const [error, setError] = useState('');
  useEffect(() => {
    const load = () => call<Project>('GET', `/projects/${encodeURIComponent(project)}`).then((p) => { setShown(p); setError(''); }, (e: Error) => setError(e.message));
    void load();
    // Use changes with what any page does: read it again on each page change and every 10 s.
    const t = setInterval(() => void load(), 10_000);
    addEventListener('hashchange', load);
    return () => { clearInterval(t); removeEventListener('hashchange', load); };
  }, [project]);
  useEffect(() => {
    if (actor.role === 'admin') void call<Project[]>('GET', '/projects').then((ps) => setNames(ps.map((p) => p.name)), (e: Error) => setError(e.message));
  }, [actor]);
  return (
    <div class="project-bar" data-project={project}>
      {actor.role === 'admin' && names.length > 0 ? (
        <label>Project <select name="project" value={project} onChange={(e) => onSwitch((e.target as HTMLSelectElement).value)}>
          {names.map((n) => <option key={n} value={n}>{n}</option>)}
        </select></label>
      ) : <span>Project <strong>{project}</strong></span>}
      {shown && (
        <ul class="usage">
          {QUOTAS.map(([q, label]) => <li key={q} data-quota={q}>{label} {shown.use[q] ?? 0} / {shown.limits[q] ?? '–'}</li>)}
        </ul>
      )}
      {error && <span class="error" role="alert">{error}</span>}
    </div>
  );
}
