#!/usr/bin/env node
import { runCli } from './program.ts';

const [major] = process.versions.node.split('.').map(Number);
if ((major ?? 0) < 22) {
  process.stderr.write(
    `chaperone: Node.js >= 22 is required (this is ${process.version}); run ./chaperone, which installs one\n`,
  );
  process.exit(1);
}

process.exitCode = await runCli(process.argv.slice(2), { env: process.env, version: '0.1.0' });
