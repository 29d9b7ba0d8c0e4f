import { invalid } from './errors.js';

/**
 * kumo's config file (/etc/kumo/kumo.conf when installed from the package): `KEY=VALUE` lines,
 * `#` comments. Upper-case keys are the environment variables below; dotted keys are site
 * settings (`kumo config list`), the defaults until `kumo config set` stores another value.
 */
export interface ConfigFile {
  env: Record<string, string>;
  settings: Record<string, string>;
}

/** The environment variables a config file may set, with what each means and its default. */
export const CONFIG_ENV = {
  KUMO_HOME: { default: '/var/lib/kumo', help: 'where kumo keeps its state: the store (kumo.db), images, instance disks, volumes, shares' },
  KUMO_CACHE: { default: '', help: 'the image build cache (downloaded .debs, kernels); empty: KUMO_HOME/cache' },
  KUMO_LIBVIRT_URI: { default: 'qemu:///system', help: 'the libvirt connection of this machine\'s hypervisor (the host "local")' },
  KUMO_LIBVIRT_TIMEOUT: { default: '120', help: 'seconds one libvirt call may take before kumo gives up (1-3600)' },
  KUMO_LIBVIRT_PROTOCOL: { default: '1', help: '1: libvirt reads and lifecycle writes over kumo\'s protocol connection; 0: all through virsh' },
} as const;

const LINE = /^([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/;

/** Parses the file's text; a line that is not `KEY=VALUE`, or an unknown variable, is refused with its line number. */
export function parseConfigFile(text: string, file: string): ConfigFile {
  const out: ConfigFile = { env: {}, settings: {} };
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = LINE.exec(line);
    if (!m) throw invalid(`${file}:${i + 1}: expected KEY=VALUE, got "${line}"`, 'fix the line, or comment it out with #');
    const [, key, rawValue] = m as unknown as [string, string, string];
    const value = unquote(rawValue.trim());
    if (key.includes('.')) out.settings[key] = value;
    else if (key in CONFIG_ENV) out.env[key] = value;
    else throw invalid(`${file}:${i + 1}: unknown variable ${key}`, `known: ${Object.keys(CONFIG_ENV).join(', ')}, and the site settings of kumo config list`);
  });
  return out;
}

/** 'x' or "x" stand for x (as in a shell or a systemd environment file). */
function unquote(v: string): string {
  return v.length >= 2 && (v[0] === '"' || v[0] === '\'') && v.endsWith(v[0]) ? v.slice(1, -1) : v;
}

/** The documented default file: every variable and setting, commented out at its default. */
export function renderConfigFile(settings: readonly { key: string; default: string; help: string }[]): string {
  const entry = (key: string, def: string, help: string) => `# ${help}\n#${key}=${def}\n`;
  return [
    '# kumo\'s configuration. /usr/bin/kumo and the kumo-* services read it (KUMO_CONFIG names',
    '# another file). A variable set in the environment wins over this file.',
    '# Every line is commented out at its default: remove the # to change one.',
    '',
    '## Environment',
    '',
    ...Object.entries(CONFIG_ENV).map(([k, v]) => entry(k, v.default, v.help)),
    '## Site settings: defaults here; `kumo config set KEY VALUE` stores a value that wins over them',
    '',
    ...settings.map((s) => entry(s.key, s.default, s.help)),
  ].join('\n');
}
