/**
 * Who asks, and so how far a request may reach into the machine kumo runs on.
 *
 * - `machine`: root on this machine through the CLI. It may name the server's own files and
 *   sockets (an image file, a libvirt socket anywhere, a folder to share): root can read and
 *   connect to those without kumo, so kumo refusing them would protect nothing.
 * - `cloud`: anyone else — any API token, and a datacenter file (which the API applies too).
 *   It reaches only what the cloud offers: libvirt over an allow-listed transport, images from
 *   http(s) on public addresses (or a mirror the site named), shares under KUMO_HOME/shares.
 *
 * Services take `cloud` unless told otherwise: a face that forgets to say fails closed.
 */
export type Reach = 'machine' | 'cloud';

/** The words an error uses for "root on the machine may do this through the CLI". */
export const ROOT_ONLY = 'only root on the machine may do that, through the CLI';
