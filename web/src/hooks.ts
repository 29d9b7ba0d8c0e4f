import { useCallback, useEffect, useState } from 'preact/hooks';
import { call } from './api';

/**
 * A list from the API, reloaded every `everyMs` and whenever `reload()` is called (after an
 * action), so a page shows what the server has without its own bookkeeping.
 */
export function useList<T>(path: string, everyMs = 10_000): { rows?: T[]; error: string; reload: () => Promise<void> } {
  const [rows, setRows] = useState<T[] | undefined>();
  const [error, setError] = useState('');
  const reload = useCallback(async () => {
    try {
      setRows(await call<T[]>('GET', path));
      setError('');
    } catch (e) {
      setError((e as Error).message);
    }
  }, [path]);
  useEffect(() => {
    void reload();
    const t = setInterval(() => void reload(), everyMs);
    return () => clearInterval(t);
  }, [reload, everyMs]);
  return { ...(rows ? { rows } : {}), error, reload };
}

/**
 * Runs one action at a time for a page: what runs (for "…" in place of its buttons) and the
 * error it ended with; `then` runs afterwards either way (usually the list's reload).
 */
export function useAction(then: () => Promise<void>) {
  const [busy, setBusy] = useState('');
  const [error, setError] = useState('');
  const run = async (what: string, work: () => Promise<unknown>): Promise<boolean> => {
    setBusy(what);
    setError('');
    try {
      await work();
      return true;
    } catch (e) {
      setError(`${what}: ${(e as Error).message}`);
      return false;
    } finally {
      setBusy('');
      await then();
    }
  };
  return { busy, error, run };
}
