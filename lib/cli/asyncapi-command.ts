import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DynamicModule, Type } from '@nestjs/common';
import { stringFlag, UsageError, type Flags, type OptionSpec } from './cli-args.js';
import type { CliIo } from './cli-output.js';

export const ASYNCAPI_OPTIONS = {
  export: { type: 'string' },
  out: { type: 'string' },
  title: { type: 'string' },
  'api-version': { type: 'string' },
  description: { type: 'string' },
} as const satisfies OptionSpec;

export interface AsyncApiCommand {
  readonly file: string;
  readonly exportName: string;
  readonly out: string | undefined;
  readonly title: string | undefined;
  readonly version: string | undefined;
  readonly description: string | undefined;
}

export function parseAsyncApiCommand(positionals: readonly string[], flags: Flags): AsyncApiCommand {
  const [file, ...extra] = positionals;
  if (!file) throw new UsageError('asyncapi needs the compiled file that exports the root module', 'asyncapi');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, 'asyncapi');
  return {
    file,
    exportName: stringFlag(flags, 'export') ?? 'AppModule',
    out: stringFlag(flags, 'out'),
    title: stringFlag(flags, 'title'),
    version: stringFlag(flags, 'api-version'),
    description: stringFlag(flags, 'description'),
  };
}

/**
 * A real dynamic import(), also in the CommonJS build: TypeScript compiles `import()` to
 * `require()` there, and require() takes no file URL (the one form of an absolute path that
 * works on every OS).
 */
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<Record<string, unknown>>;

export async function runAsyncApiCommand(command: AsyncApiCommand, io: CliIo): Promise<void> {
  const path = resolve(io.cwd, command.file);
  if (!existsSync(path)) throw new Error(`module file ${command.file} does not exist`);
  if (/\.[cm]?tsx?$/.test(path)) {
    throw new Error(`${command.file} is TypeScript; build it first and pass the compiled .js file (or run the CLI under a TypeScript loader)`);
  }
  let exports: Record<string, unknown>;
  try {
    exports = await importModule(pathToFileURL(path).href);
  } catch (err) {
    throw new Error(`cannot load ${command.file}: ${(err as Error).message}`, { cause: err });
  }
  const module = pickModule(exports, command.exportName, command.file);
  // Nest's core is only needed here; the other commands start faster without it.
  const { createAsyncApiDocument } = await import('../asyncapi/create-asyncapi-document.js');
  const pkg = readPackage(io.cwd);
  const document = await createAsyncApiDocument(module, {
    title: command.title ?? pkg.name ?? command.exportName,
    version: command.version ?? pkg.version ?? '0.0.0',
    ...(command.description ?? pkg.description ? { description: command.description ?? pkg.description } : {}),
  });
  const text = `${JSON.stringify(document, null, 2)}\n`;
  if (!command.out) return io.out(text);
  writeFileSync(resolve(io.cwd, command.out), text);
  const channels = Object.keys(document.channels).length;
  const operations = Object.keys(document.operations).length;
  io.err(`Wrote ${command.out}: ${channels} channel${channels === 1 ? '' : 's'}, ${operations} operation${operations === 1 ? '' : 's'}.\n`);
}

function pickModule(exports: Record<string, unknown>, name: string, file: string): Type<unknown> | DynamicModule {
  // A CommonJS file imported from ESM puts its exports under `default` too.
  const fromDefault = exports.default && typeof exports.default === 'object' ? (exports.default as Record<string, unknown>)[name] : undefined;
  const candidate = exports[name] ?? fromDefault ?? (name === 'AppModule' ? exports.default : undefined);
  if (typeof candidate === 'function' || (candidate && typeof candidate === 'object' && 'module' in candidate)) {
    return candidate as Type<unknown> | DynamicModule;
  }
  const available = Object.keys(exports).filter((k) => typeof exports[k] === 'function');
  throw new Error(
    `${file} has no module export "${name}"${available.length ? `; it exports ${available.join(', ')} (choose one with --export)` : ''}`,
  );
}

function readPackage(cwd: string): { name?: string; version?: string; description?: string } {
  try {
    const pkg = JSON.parse(readFileSync(resolve(cwd, 'package.json'), 'utf8')) as Record<string, unknown>;
    const text = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
    return { name: text(pkg.name), version: text(pkg.version), description: text(pkg.description) };
  } catch {
    return {};
  }
}
