import { stringify } from 'yaml';
import type { Context } from './context.js';
import { SettingsService } from './settings.js';
import { invalid } from '../model/errors.js';

/**
 * A ready clouds.yaml for OpenStack's clients (the `openstack` command, openstacksdk, Ansible,
 * Terraform): a kumo API token as a Keystone application credential, pointed at the address
 * `kumo serve` last listened on (or the one the user gives), in the region kumo's catalog names.
 */

/** Where `kumo serve` last listened ("http://127.0.0.1:8780"): kept in the settings table, not a user setting. */
const SERVE_ADDRESS = 'serve.address';

/** The name clouds.yaml gives kumo's cloud: OS_CLOUD=kumo, or `openstack --os-cloud kumo`. */
export const CLOUD_NAME = 'kumo';

/** Keystone's path under kumo serve's address (src/api/openstack/paths.ts; a face's constant, repeated here below it). */
const IDENTITY_PATH = '/identity';

/** kumo serve's address when it was never started (its default: src/api/schemas.ts DEFAULT_PORT; a unit test holds them equal). */
export const SERVE_DEFAULT_BASE = 'http://127.0.0.1:8780';

/** `kumo serve` says where it listens, once it does. */
export function recordServeAddress(ctx: Context, base: string): void {
  ctx.settings.set(SERVE_ADDRESS, base);
}

const WILDCARD = new Set(['0.0.0.0', '[::]']);

/**
 * Keystone's URL for clients: `given` (an http(s) URL; a bare "http://HOST:PORT" gets /identity),
 * else the address kumo serve last listened on, else kumo serve's default address.
 * A serve on every interface (0.0.0.0) names no address clients can use: the user must say it.
 */
export function identityUrl(ctx: Context, given?: string): string {
  if (given !== undefined) return checkedAuthUrl(given);
  const base = ctx.settings.get(SERVE_ADDRESS) ?? SERVE_DEFAULT_BASE;
  const url = new URL(base);
  if (WILDCARD.has(url.hostname)) {
    throw invalid(`kumo serve listens on every interface (${url.host}): which address clients reach it by is not known here`,
      `give it: --auth-url http://HOST:${url.port}${IDENTITY_PATH}, with an address of this machine the clients reach`);
  }
  return `${url.origin}${IDENTITY_PATH}`;
}

function checkedAuthUrl(given: string): string {
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw invalid(`--auth-url "${given}" is not a URL`, `e.g. --auth-url http://10.0.0.5:8780${IDENTITY_PATH}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid(`--auth-url must be an http or https URL, got "${url.protocol}"`, `e.g. --auth-url https://cloud.example.org${IDENTITY_PATH}`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw invalid(`--auth-url "${given}" carries a user, query or fragment`, 'give the address alone: the credential goes into the file by itself');
  }
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.origin}${path === '' ? IDENTITY_PATH : path}`;
}

/** What the file holds besides the URL: the application credential (a kumo API token's id and secret). */
export interface ApplicationCredential {
  id: string;
  secret: string;
  /** The token's name, project and role, said in the file's heading comment. */
  name: string;
  project: string;
  role: string;
}

/** The clouds.yaml text: one cloud, CLOUD_NAME, authenticating with the application credential. */
export function cloudsYaml(ctx: Context, authUrl: string, cred: ApplicationCredential): string {
  const region = new SettingsService(ctx).get('openstack.region');
  const doc = {
    clouds: {
      [CLOUD_NAME]: {
        auth_type: 'v3applicationcredential',
        auth: { auth_url: authUrl, application_credential_id: cred.id, application_credential_secret: cred.secret },
        region_name: region,
        interface: 'public',
        identity_api_version: 3,
      },
    },
  };
  // Written by kumo: say what the secret is and how to use it; the yaml library quotes what needs it (an id of digits only).
  return `# kumo API token "${cred.name}" (id ${cred.id}), ${cred.role} of project "${cred.project}", as an OpenStack application credential.\n` +
    '# Keep it secret (chmod 600). Put it in ~/.config/openstack/clouds.yaml (or point OS_CLIENT_CONFIG_FILE at it),\n' +
    `# then: export OS_CLOUD=${CLOUD_NAME}; openstack server list. Revoke it with: kumo token revoke ${cred.name}\n` +
    stringify(doc);
}
