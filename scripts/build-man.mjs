#!/usr/bin/env node
// Writes the manual pages (dist/man/kumo.1, kumo-instance.1, ...) from the CLI's own command
// definitions (src/cli/man.ts), as built by tsc into dist/src. Run by `npm run build:cli`, after
// tsc; a package installs dist/man/*.1 under /usr/share/man/man1.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/man`;
const { buildProgram } = await import(`${root}dist/src/cli/program.js`);
const { manPages } = await import(`${root}dist/src/cli/man.js`);

const { version } = JSON.parse(await readFile(`${root}package.json`, 'utf8'));
// SOURCE_DATE_EPOCH (reproducible builds, set by Debian's tools) fixes the date a page shows.
const epoch = Number(process.env.SOURCE_DATE_EPOCH);
const date = (Number.isFinite(epoch) && epoch > 0 ? new Date(epoch * 1000) : new Date()).toISOString().slice(0, 10);

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
for (const page of manPages(await buildProgram('all'), { version, date })) {
  await writeFile(`${outdir}/${page.file}`, page.text);
}
