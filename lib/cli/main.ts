#!/usr/bin/env node
import 'reflect-metadata';
import { runCli } from './run-cli.js';

// No top-level await: the CLI ships as CommonJS, like the rest of the implementation.
void runCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  env: process.env,
  cwd: process.cwd(),
}).then((code) => {
  // Exit once stdout has taken everything: a loaded app module may leave handles open, and a
  // command must not hang on them.
  process.stdout.write('', () => process.exit(code));
});
