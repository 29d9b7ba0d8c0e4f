import type { Context } from '../service/context.js';
import type { Actor } from '../model/actor.js';
import type { OperationRegistry } from '../service/operations.js';
import type { SerialTarget, VncTarget } from '../service/consoles.js';

/** What every route plugin is given: the services' context and the operation registry. */
export interface ApiDeps {
  ctx: Context;
  ops: OperationRegistry;
}

/** Finds the VNC address of a running instance; the server asks ConsoleService, tests may stand in. */
export type VncResolver = (name: string) => Promise<VncTarget>;

/** Finds a running instance's libvirt; the server asks ConsoleService, tests may stand in. */
export type SerialResolver = (name: string) => Promise<SerialTarget>;

/** What a route hands a service: who asks (set by bearerAuth on every authenticated request). */
export interface ActorRequest { actor?: Actor }
