#!/usr/bin/env node
// Bundles the CLI for start-up: dist/bin/kumo.js (package.json's bin) plus the chunks it loads
// on demand, all in dist/bin/. A few chunks instead of ~390 modules to find, read and compile;
// each command's chunk is loaded only when that command runs (src/cli/commands.ts), so
// `kumo --version` reads little more than commander. Run by `npm run build` (see
// docs/decisions.md, "The CLI ships as a bundle").
import { execFileSync } from 'node:child_process';
import { chmod, readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/bin`;

/**
 * The commit this build comes from, written into the bundle (src/cli/build-info.ts) so that
 * `kumo --version` reads no file: 12 hex digits, `-dirty` when tracked files had changes, and
 * "unknown" outside a git checkout (a source tarball) or without git.
 */
function gitCommit() {
  const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const commit = git('rev-parse', '--short=12', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') ? `${commit}-dirty` : commit;
  } catch {
    return 'unknown';
  }
}
const { version } = JSON.parse(await readFile(`${root}package.json`, 'utf8'));

/**
 * npm packages bundled into the chunks that use them: pure JavaScript that reads no file of its
 * own at run time. Loading zod as one chunk instead of ~95 files is a third of a command's
 * start-up. Any other package (a dependency added later too) stays in node_modules and is loaded
 * exactly as by the file-by-file build: a package is bundled only once someone checked it.
 */
const BUNDLED = new Set(['commander', 'zod', 'yaml', 'fast-xml-parser', 'unixcrypt', 'cli-progress', '@inquirer/prompts',
  // Must share kumo's zod (it checks schemas kumo made); its fastify imports stay external.
  'fastify-type-provider-zod']);
/**
 * Never bundled, whoever imports them: native modules (better-sqlite3, @lydell/node-pty), and
 * `kumo serve`'s web stack (fastify and @fastify/*: swagger-ui serves its own static folder,
 * fastify's logger loads worker files; ws: one copy with @fastify/websocket's).
 */
const EXTERNAL = /^(better-sqlite3|@lydell\/node-pty|fastify|@fastify\/[^/]+|ws)(\/|$)/;

const packageName = (spec) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');

/** @type {import('esbuild').Plugin} */
const chooseBundled = {
  name: 'kumo-bundled-packages',
  setup(b) {
    // Bare specifiers only (not ./x, /x or node:x).
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return undefined;
      if (EXTERNAL.test(args.path)) return { path: args.path, external: true };
      // A bundled package's own dependencies are part of it; kumo's imports go by the list.
      if (args.importer.includes('/node_modules/')) return undefined;
      return BUNDLED.has(packageName(args.path)) ? undefined : { path: args.path, external: true };
    });
  },
};

// Old chunks have other hashes: start from an empty folder.
await rm(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { kumo: 'src/cli/main.ts' },
  outdir,
  bundle: true,
  // Chunks for the dynamic imports (the commands, the context): loaded only when used.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [chooseBundled],
  define: { KUMO_BUILD_VERSION: JSON.stringify(version), KUMO_BUILD_COMMIT: JSON.stringify(gitCommit()) },
  // Bundled CommonJS packages (yaml, cli-progress) call require() for Node's own modules.
  banner: { js: "import { createRequire as kumoCreateRequire } from 'node:module'; const require = kumoCreateRequire(import.meta.url);" },
  chunkNames: 'chunk-[hash]',
  sourcemap: 'linked',
  // Names stay readable in an internal error's stack.
  minify: false,
  logLevel: 'warning',
});
// Runnable as ./dist/bin/kumo.js too (npm sets the bit itself when it links the bin).
await chmod(`${outdir}/kumo.js`, 0o755);
