// Copied into an app that installed the packed tarball and run there: `import` and `require` of every entry
// must give the same objects (one implementation, no dual-package hazard) and the same names.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const problems = [];
for (const entry of ['nestjs-jetstream', 'nestjs-jetstream/transport', 'nestjs-jetstream/testing', 'nestjs-jetstream/health']) {
  const esm = await import(entry);
  const cjs = require(entry);
  const esmNames = Object.keys(esm).sort();
  const cjsNames = Object.keys(cjs).sort();
  if (esmNames.join() !== cjsNames.join()) problems.push(`${entry}: import has [${esmNames}], require has [${cjsNames}]`);
  for (const name of esmNames) if (esm[name] !== cjs[name]) problems.push(`${entry}: ${name} differs between import and require`);
}
const esm = await import('nestjs-jetstream');
const cjs = require('nestjs-jetstream');
if (!(new cjs.TerminalError('from require') instanceof esm.TerminalError)) problems.push('a required TerminalError is no instance of the imported class');
if (!(new esm.TerminalError('from import') instanceof cjs.JetStreamModuleError)) problems.push('an imported TerminalError is no instance of the required JetStreamModuleError');
if (esm.JetStreamModule !== cjs.JetStreamModule) problems.push('two JetStreamModule classes');
if (problems.length > 0) {
  console.error(`dual package: ${problems.join('\n')}`);
  process.exit(1);
}
console.log(`dual package on Node ${process.version}: import and require share one implementation (${Object.keys(esm).length} root exports)`);
