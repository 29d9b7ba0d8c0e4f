import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { context, say } from '../app.js';
import { gib, json, table } from '../render.js';
import { ImageService } from '../../service/images.js';
import { invalid } from '../../model/errors.js';

export function imageCommand(): Command {
  const cmd = new Command('image').description('cloud images instances are made from');

  cmd.command('build').argument('<recipe>', 'what to build: tiny (a busybox cloud-style test image)')
    .description('build an image from Debian packages (no internet beyond the Debian mirror)')
    .action(async (recipe: string) => {
      if (recipe !== 'tiny') throw invalid(`unknown recipe "${recipe}"`, 'available: kumo image build tiny');
      const svc = new ImageService(await context());
      const { image, built } = await svc.buildTiny((step) => say(`  ${step}`));
      console.log(`${built ? 'built' : 'up to date:'} image "${image.name}" (${image.os}, ${gib(image.virtualSizeBytes)})`);
    });

  cmd.command('import').argument('<name>').argument('<source>', 'a local qcow2/raw file or an http(s) URL')
    .description('add a cloud image (e.g. CentOS-7-x86_64-GenericCloud.qcow2)')
    .option('--os <label>', 'what the wizard shows, e.g. "CentOS 7.8"')
    .option('--sha256 <hex>', 'expected checksum of the file')
    .option('--kernel <file>', 'direct-boot kernel (images without their own boot loader)')
    .option('--initrd <file>', 'direct-boot initrd')
    .option('--cmdline <text>', 'direct-boot kernel command line')
    .action(async (name: string, source: string, o: { os?: string; sha256?: string; kernel?: string; initrd?: string; cmdline?: string }) => {
      const svc = new ImageService(await context());
      const bar = process.stderr.isTTY ? new SingleBar({ format: ' {bar} {percentage}% | {value}/{total} MiB', stream: process.stderr }) : undefined;
      let started = false;
      const image = await svc.import(name, source, {
        ...o,
        onProgress: (done, total) => {
          if (!bar || !total) return;
          if (!started) { bar.start(Math.round(total / 2 ** 20), 0); started = true; }
          bar.update(Math.round(done / 2 ** 20));
        },
      }).finally(() => started && bar?.stop());
      console.log(`imported image "${image.name}" (${image.os}, ${image.format}, ${gib(image.virtualSizeBytes)})`);
    });

  cmd.command('list').description('list images').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const images = new ImageService(await context()).list();
      if (o.json) return console.log(json(images));
      console.log(table(['Name', 'OS', 'Format', 'Size', 'Boot'],
        images.map((i) => [i.name, i.os, i.format, gib(i.virtualSizeBytes), i.kernel ? 'direct kernel' : 'own boot loader'])));
    });

  cmd.command('show').argument('<name>').option('--json', 'machine-readable output')
    .action(async (name: string, o: { json?: boolean }) => {
      const i = new ImageService(await context()).get(name);
      if (o.json) return console.log(json(i));
      for (const [k, v] of Object.entries(i)) console.log(`${k.padEnd(18)} ${String(v)}`);
    });

  cmd.command('delete').argument('<name>').description('delete an image no instance uses')
    .action(async (name: string) => {
      await new ImageService(await context()).delete(name);
      console.log(`deleted image "${name}"`);
    });
  return cmd;
}
