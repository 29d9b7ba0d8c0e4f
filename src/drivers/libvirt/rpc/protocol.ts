import { XdrReader, XdrWriter } from './xdr.js';

/**
 * The pieces of libvirt's RPC protocol kumo speaks, written by hand from reading libvirt's
 * protocol definitions (virnetprotocol.x, virkeepaliveprotocol.x, remote_protocol.x; none of
 * their text or code is copied): constants, one interface per struct, one encode/decode function
 * per struct. Numbers and layouts are the wire's (libvirt never reuses or renumbers a
 * procedure); names follow libvirt's without the remote_ prefix. Adding a procedure:
 * docs/decisions.md, "Adding a procedure to the protocol driver".
 */

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
/** "keep": libvirt's keepalive program; PING and PONG carry no payload. */
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROC_PING = 1;
export const KEEPALIVE_PROC_PONG = 2;

/** VIR_NET_MESSAGE_MAX (header + payload; the length word counts itself on top). */
export const MESSAGE_MAX = 16_777_216 + 4;
export const REMOTE_DOMAIN_LIST_MAX = 16384;
export const REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX = 4096;

export enum MessageType { CALL = 0, REPLY = 1, MESSAGE = 2, STREAM = 3, CALL_WITH_FDS = 4, REPLY_WITH_FDS = 5 }
export enum MessageStatus { OK = 0, ERROR = 1, CONTINUE = 2 }

export enum Proc {
  CONNECT_OPEN = 1,
  CONNECT_CLOSE = 2,
  NODE_GET_INFO = 6,
  DOMAIN_CREATE = 9,
  DOMAIN_DEFINE_XML = 11,
  DOMAIN_DESTROY = 12,
  DOMAIN_GET_XML_DESC = 14,
  DOMAIN_LOOKUP_BY_NAME = 23,
  DOMAIN_LOOKUP_BY_UUID = 24,
  // Networks: the DHCP leases a list shows (networks.ts).
  NETWORK_GET_XML_DESC = 43,
  NETWORK_LOOKUP_BY_NAME = 46,
  CONNECT_SUPPORTS_FEATURE = 60,
  AUTH_LIST = 66,
  AUTH_POLKIT = 70,
  DOMAIN_GET_STATE = 212,
  DOMAIN_UNDEFINE_FLAGS = 231,
  CONNECT_LIST_ALL_DOMAINS = 273,
  CONNECT_LIST_ALL_NETWORKS = 283,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY = 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY = 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE = 318,
  // Networks: the DHCP leases a list shows (networks.ts).
  NETWORK_GET_DHCP_LEASES = 341,
  CONNECT_GET_ALL_DOMAIN_STATS = 344,
}

/**
 * The domain lifecycle writes (define, start, stop, reboot, undefine) and what a create asks
 * before them: a block of their own, so
 * that procedures added for reads and for writes do not touch the same lines. TypeScript merges
 * the two declarations into one enum.
 */
export enum Proc {
  DOMAIN_REBOOT = 27,
  DOMAIN_SHUTDOWN = 33,
  /** Asked before a define: whether the host can filter NICs (nic-filter.ts). */
  CONNECT_NUM_OF_NWFILTERS = 178,
  /** Asked by a delete before it removes snapshots (most domains have none). */
  DOMAIN_SNAPSHOT_NUM = 187,
  DOMAIN_CREATE_WITH_FLAGS = 196,
  DOMAIN_DESTROY_FLAGS = 234,
  DOMAIN_DEFINE_XML_FLAGS = 350,
}

/** virDomainUndefineFlagsValues kumo passes (what `virsh undefine --snapshots-metadata --nvram` sets). */
export const UNDEFINE_SNAPSHOTS_METADATA = 2;
export const UNDEFINE_NVRAM = 4;

/** virNetMessageHeader: six 4-byte words after the length word. */
export interface Header { prog: number; vers: number; proc: number; type: MessageType; serial: number; status: MessageStatus }

export function encodeHeader(w: XdrWriter, h: Header): void {
  w.uint(h.prog).uint(h.vers).int(h.proc).int(h.type).uint(h.serial).int(h.status);
}

export function decodeHeader(r: XdrReader): Header {
  return { prog: r.uint(), vers: r.uint(), proc: r.int(), type: r.int(), serial: r.uint(), status: r.int() };
}

/** remote_nonnull_domain: libvirt finds the domain by its UUID; the name travels along. */
export interface Domain { name: string; uuid: string; id: number }

const uuidBytes = (uuid: string) => Buffer.from(uuid.replace(/-/g, ''), 'hex');
const uuidText = (b: Buffer) => b.toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');

export function encodeDomain(w: XdrWriter, d: Domain): void {
  w.string(d.name).fixedOpaque(uuidBytes(d.uuid)).int(d.id);
}

export function decodeDomain(r: XdrReader): Domain {
  return { name: r.string(), uuid: uuidText(r.fixedOpaque(16)), id: r.int() };
}

/** remote_error: what a REPLY with status ERROR carries. */
export interface RemoteError { code: number; domain: number; message?: string; level: number }

export function decodeError(r: XdrReader): RemoteError {
  const code = r.int();
  const domain = r.int();
  const message = r.optional((x) => x.string());
  const level = r.int();
  return { code, domain, level, ...(message !== undefined ? { message } : {}) };
}

/** remote_typed_param: a named value whose type is the union's discriminant (VIR_TYPED_PARAM_*). */
export type TypedValue = number | bigint | boolean | string;

export function decodeTypedParam(r: XdrReader): [string, TypedValue] {
  const field = r.string();
  const type = r.int();
  switch (type) {
    case 1: return [field, r.int()];
    case 2: return [field, r.uint()];
    case 3: return [field, r.hyper()];
    case 4: return [field, r.uhyper()];
    case 5: return [field, r.double()];
    case 6: return [field, r.int() !== 0];
    case 7: return [field, r.string()];
    default: throw new Error(`XDR: typed parameter ${field} has unknown type ${type}`);
  }
}

/** virDomainState, as virsh names the states (kumo's RuntimeState uses these words). */
export const DOMAIN_STATE_NAMES = ['no state', 'running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended'] as const;

/** virDomainEventType of a lifecycle event. */
export const LIFECYCLE_EVENT_NAMES = ['Defined', 'Undefined', 'Started', 'Suspended', 'Resumed', 'Stopped', 'Shutdown', 'PMSuspended', 'Crashed'] as const;

/** remote_auth_type */
export enum AuthType { NONE = 0, SASL = 1, POLKIT = 2 }

/** VIR_DRV_FEATURE_PROGRAM_KEEPALIVE: asking whether it is supported also starts the daemon's pings. */
export const FEATURE_PROGRAM_KEEPALIVE = 10;

/** virErrorNumber values callers test for. */
export const VIR_ERR_NO_DOMAIN = 42;
export const VIR_ERR_NO_NETWORK = 43;
/** "Requested operation is not valid": e.g. destroying a domain that is not running. */
export const VIR_ERR_OPERATION_INVALID = 55;

/** VIR_DOMAIN_EVENT_ID_LIFECYCLE for CALLBACK_REGISTER_ANY. */
export const EVENT_ID_LIFECYCLE = 0;
/** VIR_DOMAIN_STATS_STATE for CONNECT_GET_ALL_DOMAIN_STATS. */
export const DOMAIN_STATS_STATE = 1;

/** remote_domain_event_callback_lifecycle_msg */
export interface LifecycleEvent { callbackID: number; dom: Domain; event: number; detail: number }

export function decodeLifecycle(r: XdrReader): LifecycleEvent {
  return { callbackID: r.int(), dom: decodeDomain(r), event: r.int(), detail: r.int() };
}
