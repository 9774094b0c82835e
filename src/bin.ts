#!/usr/bin/env node
/**
 * The `curvature` command of an installed package. The CLI's packages are optional peer
 * dependencies (src/cli-peers.ts); when one is missing this says which, in one line, instead of
 * a module-resolution stack trace. From a clone, `npm run curvature` runs src/cli.ts directly.
 */
import { missingPeers } from './cli-peers.js';

const missing = missingPeers((name) => import.meta.resolve(name));
if (missing.length > 0) {
  process.stderr.write(
    `curvature: the command needs packages that the library alone does not install; run\n` +
      `  npm install ${missing.join(' ')}\n`,
  );
  process.exitCode = 2;
} else {
  const { main } = await import('./cli.js');
  process.exitCode = await main(process.argv.slice(2));
}
