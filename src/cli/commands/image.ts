import { Command } from 'commander';
import { named } from '../names.js';
import { SingleBar } from 'cli-progress';
import { actor, context, say } from '../app.js';
import { gib, json, table } from '../render.js';
import { ImageService } from '../../service/images.js';
import { invalid } from '../../model/errors.js';
import { parseImageSize, parsePackages } from '../../model/image-build.js';

export function imageCommand(): Command {
  const cmd = new Command('image').description('cloud images instances are made from');

  cmd.command('build').argument('<recipe>', 'what to build: tiny (a busybox cloud-style test image) or debian-12 (a Debian 12 cloud image)')
    .description('build an image from Debian packages (no internet beyond the Debian mirror)')
    .option('--size <GiB>', 'debian-12: the image\'s disk size, e.g. 3G (instances grow it to their flavor)', '3G')
    .option('--packages <list>', 'debian-12: extra Debian packages, comma-separated (e.g. nginx,curl)')
    .option('--name <name>', 'debian-12: register the image under this name (default: the recipe\'s)')
    .action(async (recipe: string, o: { size: string; packages?: string; name?: string }) => {
      if (recipe === 'tiny') {
        const svc = new ImageService(await context(), actor());
        const { image, built } = await svc.buildTiny((step) => say(`  ${step}`));
        console.log(`${built ? 'built' : 'up to date:'} image "${image.name}" (${image.os}, ${gib(image.virtualSizeBytes)})`);
        return;
      }
      if (recipe !== 'debian-12') throw invalid(`unknown recipe "${recipe}"`, 'available: kumo image build tiny, kumo image build debian-12');
      // Checked before anything slow starts.
      const sizeGiB = parseImageSize(o.size);
      const packages = o.packages !== undefined ? parsePackages(o.packages) : undefined;
      const svc = new ImageService(await context(), actor());
      const { image, built, buildSeconds, kept } = await svc.buildDebian({
        recipe, sizeGiB, ...(packages ? { packages } : {}), ...(o.name ? { name: o.name } : {}), onProgress: (step) => say(`  ${step}`),
      });
      if (kept) {
        console.log(`kept image "${image.name}": instances use it. The new build is in the cache; register it beside the old one with --name ${image.name}-2`);
        return;
      }
      console.log(`${built ? `built (${buildSeconds} s)` : 'up to date:'} image "${image.name}" (${image.os}, ${gib(image.virtualSizeBytes)}, boots from its own boot loader)`);
    });

  cmd.command('import').argument('<name>').argument('<source>', 'a local qcow2/raw file or an http(s) URL')
    .description('add a cloud image (e.g. CentOS-7-x86_64-GenericCloud.qcow2)')
    .option('--os <label>', 'what the wizard shows, e.g. "CentOS 7.8"')
    .option('--sha256 <hex>', 'expected checksum of the file')
    .option('--kernel <file>', 'direct-boot kernel (images without their own boot loader)')
    .option('--initrd <file>', 'direct-boot initrd')
    .option('--cmdline <text>', 'direct-boot kernel command line')
    .option('--ready <check>', 'how its instances are known ready: cloud-init (default), ssh, http:PORT or agent')
    .action(async (name: string, source: string, o: { os?: string; sha256?: string; kernel?: string; initrd?: string; cmdline?: string; ready?: string }) => {
      const svc = new ImageService(await context(), actor());
      const bar = process.stderr.isTTY ? new SingleBar({ format: ' {bar} {percentage}% | {value}/{total} MiB', stream: process.stderr }) : undefined;
      let started = false;
      const image = await svc.import(name, source, {
        ...o,
        onProgress: (done, total) => {
          if (!bar || !total) return;
          if (!started) { bar.start(Math.round(total / 2 ** 20), 0); started = true; }
          bar.update(Math.round(done / 2 ** 20));
        },
      }, 'machine').finally(() => started && bar?.stop()); // root on the machine: server files and any address
      console.log(`imported image "${image.name}" (${image.os}, ${image.format}, ${gib(image.virtualSizeBytes)})`);
    });

  cmd.command('list').description('list images').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const images = new ImageService(await context(), actor()).list();
      if (o.json) return console.log(json(images));
      console.log(table(['Name', 'OS', 'Format', 'Size', 'Boot', 'Ready'],
        images.map((i) => [i.name, i.os, i.format, gib(i.virtualSizeBytes), i.kernel ? 'direct kernel' : 'own boot loader', i.ready ?? ''])));
    });

  cmd.command('show').addArgument(named('image', '<name>')).option('--json', 'machine-readable output')
    .action(async (name: string, o: { json?: boolean }) => {
      const i = new ImageService(await context(), actor()).get(name);
      if (o.json) return console.log(json(i));
      for (const [k, v] of Object.entries(i)) console.log(`${k.padEnd(18)} ${String(v)}`);
    });

  cmd.command('delete').addArgument(named('image', '<name>')).description('delete an image no instance uses')
    .action(async (name: string) => {
      await new ImageService(await context(), actor()).delete(name);
      console.log(`deleted image "${name}"`);
    });
  addSetReady(cmd);
  return cmd;
}

/** `kumo image set NAME --ready CHECK`: how instances of the image are known ready. */
function addSetReady(cmd: Command): void {
  cmd.command('set').addArgument(named('image', '<name>')).description('change how instances of an image are known ready (--wait, show)')
    .requiredOption('--ready <check>', 'http:PORT, ssh, cloud-init, agent, or "default" (tiny: http:8080; others: cloud-init)')
    .action(async (name: string, o: { ready: string }) => {
      const image = new ImageService(await context(), actor()).setReady(name, o.ready === 'default' ? undefined : o.ready);
      console.log(`image "${image.name}": instances are ready by ${image.ready}`);
    });
}
