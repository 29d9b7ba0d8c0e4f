import { createHash, generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import type { Context } from './context.js';
import { KeypairRepo, type KeypairRecord } from '../store/keypairs.js';
import { KumoError, invalid, notFound } from '../model/errors.js';
import { checkLabel } from '../model/names.js';
import { isSshPublicKey } from '../model/checks.js';
import { machineActor, type Actor } from '../model/actor.js';
import { actingProject } from './scope.js';

/** A keypair as the faces show it: the project's record without the project. */
export type Keypair = Omit<KeypairRecord, 'project'>;

/** What generating a keypair gives: the keypair, and its private key, handed out this once and never kept. */
export interface GeneratedKeypair {
  keypair: Keypair;
  privateKey: string;
}

const generateRsa = promisify(generateKeyPair);

/**
 * Keypairs (Nova's os-keypairs): ssh public keys a project keeps under a name, put into a server
 * as root's authorized key when it is made with that name. Per project: a reader sees them, a
 * member adds and deletes them. A key is imported, or generated here (RSA 2048): then its
 * private key is returned once, as Nova does, and kumo keeps only the public half.
 */
export class KeypairService {
  private readonly repo: KeypairRepo;

  constructor(private readonly ctx: Context, private readonly actor: Actor = machineActor()) {
    this.repo = new KeypairRepo(ctx.db);
  }

  list(): Keypair[] {
    return this.repo.list(this.actor.project).map(view);
  }

  get(name: string): Keypair {
    const k = this.repo.get(this.actor.project, name);
    if (!k) throw notFound(`keypair "${name}" does not exist`, 'see `openstack keypair list`; import one with `openstack keypair create --public-key ~/.ssh/id_ed25519.pub NAME`');
    return view(k);
  }

  /** Keeps an ssh public key under `name`, checked first: its form, and that its blob is of the type it names. */
  import(name: string, publicKey: string): Keypair {
    return this.insert(name, checkPublicKey(publicKey));
  }

  /** Makes an RSA key pair; the private key (PEM, as Nova's) is in the answer only. */
  async generate(name: string): Promise<GeneratedKeypair> {
    this.checkNew(name);
    const pair = await generateRsa('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
    const jwk = pair.publicKey.export({ format: 'jwk' });
    const blob = Buffer.concat([sshString(Buffer.from('ssh-rsa')), sshMpint(fromB64Url(jwk.e!)), sshMpint(fromB64Url(jwk.n!))]);
    const keypair = this.insert(name, `ssh-rsa ${blob.toString('base64')} Generated-by-kumo`);
    return { keypair, privateKey: pair.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString() };
  }

  delete(name: string): void {
    if (!this.repo.delete(this.actor.project, name)) this.get(name);
  }

  private checkNew(name: string): string {
    checkLabel('keypair', name, '"mykey" or "laptop-2026"');
    const project = actingProject(this.ctx, this.actor);
    if (this.repo.get(project, name)) throw exists(name);
    return project;
  }

  private insert(name: string, publicKey: string): Keypair {
    const project = this.checkNew(name);
    const record = { project, name, publicKey, fingerprint: sshFingerprint(publicKey), type: 'ssh' as const, createdAt: new Date().toISOString() };
    if (!this.repo.insert(record)) throw exists(name);
    return this.get(name);
  }
}

const view = ({ project: _project, ...k }: KeypairRecord): Keypair => k;

const exists = (name: string) => new KumoError('ALREADY_EXISTS', `keypair "${name}" already exists`, `pick another name, or delete it first: openstack keypair delete ${name}`);

/** The key's blob, base64-decoded, and the type its first field says it is. */
function keyParts(line: string): { type: string; blob: Buffer } {
  const [type = '', data = ''] = line.trim().split(/\s+/);
  return { type, blob: Buffer.from(data, 'base64') };
}

/**
 * An OpenSSH public key line (a .pub file's one line), trimmed; refused with the reason when it is
 * not one, or when its blob does not start with the type it names (a truncated or pasted-over key).
 */
export function checkPublicKey(text: string): string {
  const line = text.trim();
  const fix = 'pass the contents of a .pub file, one line such as "ssh-ed25519 AAAAC3Nz… you@laptop" (openstack keypair create --public-key FILE NAME)';
  if (line.includes('\n')) throw invalid('the public key has more than one line', fix);
  if (!isSshPublicKey(line)) throw invalid(`"${line.slice(0, 40)}${line.length > 40 ? '…' : ''}" is not an OpenSSH public key`, fix);
  const { type, blob } = keyParts(line);
  const inner = blob.length >= 4 ? blob.subarray(4, 4 + blob.readUInt32BE(0)).toString('latin1') : '';
  if (inner !== type) throw invalid(`the public key says it is "${type}" but its data is ${inner ? `a "${inner}" key` : 'not a key'}`, fix);
  return line;
}

/** Nova's fingerprint: MD5 of the key's blob, as colon-separated hex pairs. */
export function sshFingerprint(publicKey: string): string {
  return createHash('md5').update(keyParts(publicKey).blob).digest('hex').match(/../g)!.join(':');
}

const fromB64Url = (text: string) => Buffer.from(text, 'base64url');

/** SSH's wire "string": a 4-byte big-endian length, then the bytes. */
function sshString(bytes: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

/** SSH's "mpint": a positive number with a leading zero byte when its top bit is set. */
const sshMpint = (bytes: Buffer): Buffer => sshString(bytes[0]! & 0x80 ? Buffer.concat([Buffer.alloc(1), bytes]) : bytes);
