import { input, password } from '@inquirer/prompts';
import { actor, context } from './app.js';
import { launch } from './launch.js';
import { pickLanguage, type Messages } from './i18n.js';
import type { Context } from '../service/context.js';
import { InstanceService, type CreateRequest } from '../service/instances.js';
import { ImageService } from '../service/images.js';
import { FlavorService } from '../service/flavors.js';
import { BUILTIN_NETWORKS } from '../service/networks.js';
import { SettingsService } from '../service/settings.js';
import { KumoError } from '../model/errors.js';
import { checkName } from '../model/names.js';
import { checkSize, parseWhole } from '../model/sizes.js';
import type { ConsoleMode } from '../model/types.js';
import type { ReadyCheck } from '../model/readiness.js';

export interface WizardOptions {
  lang?: string;
  showPassword?: boolean;
  console: ConsoleMode | 'auto';
  wait?: boolean;
  /** --wait-for: the check to wait on instead of the image's own. */
  waitFor?: ReadyCheck;
}

/** The course's wizard prompts have no "?" decoration: the message is the whole prompt. */
const theme = { prefix: '' };

/** Asks until the answer passes `check`, which returns an error text or undefined. */
async function ask(message: string, check: (v: string) => string | undefined, def?: string): Promise<string> {
  const answer = await input({ message, theme, ...(def !== undefined ? { default: def } : {}), validate: (v) => check(v.trim()) ?? true });
  return answer.trim();
}

const problem = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return e instanceof KumoError ? e.message : String(e);
  }
};

function choose(m: Messages, message: string, options: string[]): Promise<number> {
  console.log(message.replace(/\s*:$/, ''));
  options.forEach((o, i) => console.log(`    - ${i + 1}. ${o}`));
  return ask(message, (v) => {
    const n = parseWhole(v);
    return n >= 1 && n <= options.length ? undefined : m.pickNumber(options.length);
  }).then((v) => parseWhole(v) - 1);
}

/** Which libvirt network each of the course's three choices means (site settings), or why it cannot be used yet. */
async function networkFor(ctx: Context, choice: number): Promise<{ network?: string; problem?: string }> {
  const settings = new SettingsService(ctx);
  const name = settings.get((['wizard.bridge', 'wizard.nat', 'wizard.isolated'] as const)[choice]!);
  if (!name) {
    return { problem: 'no host bridge is configured: define a bridge network and run `kumo config set wizard.bridge NAME`, or choose 2. NAT(default)' };
  }
  if (BUILTIN_NETWORKS[name]) return { network: name };
  const defined = (await ctx.virsh.listNetworks()).some((n) => n.name === name);
  return defined ? { network: name } : { problem: `network "${name}" is not defined yet: create it first (virsh net-define ${name}.xml && virsh net-start ${name}), or choose 2. NAT(default)` };
}

export async function runWizard(opts: WizardOptions): Promise<void> {
  const m = pickLanguage(opts.lang);
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    throw new KumoError('NOT_INTERACTIVE', 'kumo create asks its questions in a terminal, and this input is not one',
      'pass the answers as flags instead: kumo instance create NAME --image IMAGE --flavor small --password-file FILE --network default [--disk 5]');
  }
  const ctx = await context();
  const images = new ImageService(ctx, actor()).list();
  if (!images.length) throw new KumoError('NOT_FOUND', m.noImages);
  const flavors = new FlavorService(ctx, actor()).list();
  const instances = new InstanceService(ctx, actor());

  console.log(m.title);
  console.log('');
  const image = images[await choose(m, m.os, images.map((i) => i.os))]!;
  const flavorOptions = [...flavors.map((f) => m.flavorLine(f.vcpus, f.ramMiB % 1024 === 0 ? `${f.ramMiB / 1024}G` : `${f.ramMiB}M`, f.diskGiB)), m.customFlavor];
  const f = await choose(m, m.flavor, flavorOptions);
  const sizes = f < flavors.length
    ? { flavor: flavors[f]!.name, vcpus: flavors[f]!.vcpus, ramMiB: flavors[f]!.ramMiB, diskGiB: flavors[f]!.diskGiB }
    : {
        vcpus: parseWhole(await ask(m.vcpus, (v) => problem(() => checkSize('vcpus', parseWhole(v))), '1')),
        ramMiB: parseWhole(await ask(m.ram, (v) => problem(() => checkSize('ram', parseWhole(v))), '1024')),
        diskGiB: parseWhole(await ask(m.diskSize, (v) => problem(() => checkSize('disk-size', parseWhole(v))), '10')),
      };
  let rootPassword = '';
  for (;;) {
    rootPassword = await password({ message: m.password, mask: '*', theme, validate: (v) => (v.length ? true : m.password) });
    const again = await password({ message: m.passwordAgain, mask: '*', theme });
    if (again === rootPassword) break;
    console.log(m.passwordMismatch);
  }
  let network = '';
  let networkChoice = 0;
  for (;;) {
    networkChoice = await choose(m, m.network, m.networkChoices);
    const r = await networkFor(ctx, networkChoice);
    if (r.network) { network = r.network; break; }
    console.log(r.problem);
  }
  const extra = parseWhole(await ask(m.extraDisk, (v) => (parseWhole(v) === 0 ? undefined : problem(() => checkSize('disk', parseWhole(v)))), '0'));
  const used = new Set(ctx.instances.list().map((i) => i.name));
  let n = 1;
  while (used.has(`vm${n}`)) n++;
  const name = await ask(m.name, (v) => problem(() => checkName('instance', v)) ?? (used.has(v) ? `"${v}" exists` : undefined), `vm${n}`);

  const flavorText = m.flavorLine(sizes.vcpus, sizes.ramMiB % 1024 === 0 ? `${sizes.ramMiB / 1024}G` : `${sizes.ramMiB}M`, sizes.diskGiB);
  console.log('');
  console.log(m.summary);
  console.log(`    - ${m.sumOs} : ${image.os}`);
  console.log(`    - ${m.sumFlavor} : ${flavorText}`);
  console.log(`    - ${m.sumPassword} : ${opts.showPassword ? rootPassword : '*'.repeat(rootPassword.length)}`);
  console.log(`    - ${m.sumNetwork} : ${m.networkChoices[networkChoice]}${network === 'default' || network === 'testnet' ? '' : ` (${network})`}`);
  console.log(`    - ${m.sumDisk} : ${extra ? `${extra} GiB` : m.none}`);
  console.log(`    - ${m.sumName} : ${name}`);
  console.log('');
  const answer = await input({ message: m.confirm, theme });
  if (!/^(y|yes)$/i.test(answer.trim())) {
    console.log(m.cancelled);
    return;
  }
  const req: CreateRequest = {
    name, image: image.name, ...sizes, password: rootPassword, networks: [network], dataDisks: extra ? [extra] : [],
  };
  await instances.validate(req);
  await launch(ctx, req, { console: opts.console, wait: opts.wait ?? false, ...(opts.waitFor ? { waitFor: opts.waitFor } : {}), messages: m.launch });
}
