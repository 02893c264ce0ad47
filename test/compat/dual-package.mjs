// Copied into an app that installed the packed tarball and run there, once per order
// (`import-first`, `require-first`): whichever format a process loads first, `import` and
// `require` of every entry give the same objects and the same names (no dual-package hazard).
import { createRequire } from 'node:module';

const order = process.argv[2];
if (order !== 'import-first' && order !== 'require-first') throw new Error('usage: dual-package.mjs import-first|require-first');
const require = createRequire(import.meta.url);
const entries = ['nestjs-jetstream', 'nestjs-jetstream/transport', 'nestjs-jetstream/testing', 'nestjs-jetstream/health'];
const loaded = [];
for (const entry of entries) {
  if (order === 'import-first') loaded.push([entry, await import(entry), require(entry)]);
  else loaded.push([entry, null, require(entry)]);
}
if (order === 'require-first') for (const row of loaded) row[1] = await import(row[0]);

const problems = [];
for (const [entry, esm, cjs] of loaded) {
  const esmNames = Object.keys(esm).sort();
  const cjsNames = Object.keys(cjs).sort();
  if (esmNames.join() !== cjsNames.join()) problems.push(`${entry}: import has [${esmNames}], require has [${cjsNames}]`);
  for (const name of esmNames) if (esm[name] !== cjs[name]) problems.push(`${entry}: ${name} differs between import and require`);
}
const [[, esm, cjs]] = loaded;
if (!(new cjs.TerminalError('from require') instanceof esm.TerminalError)) problems.push('a required TerminalError is no instance of the imported class');
if (!(new esm.TerminalError('from import') instanceof cjs.JetStreamModuleError)) problems.push('an imported TerminalError is no instance of the required JetStreamModuleError');
if (esm.JetStreamModule !== cjs.JetStreamModule) problems.push('two JetStreamModule classes');
if (problems.length > 0) {
  console.error(`dual package (${order}): ${problems.join('\n')}`);
  process.exit(1);
}
console.log(`dual package (${order}) on Node ${process.version}: import and require share one implementation (${Object.keys(esm).length} root exports)`);
