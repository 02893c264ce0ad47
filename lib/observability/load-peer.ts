import { InvalidOptionsError } from '../errors/jetstream-errors.js';

/**
 * Loads an optional peer dependency the moment a feature that needs it is switched on, so an
 * application that leaves the feature off never loads (or needs) the package. prom-client is
 * CommonJS: its exports sit on the namespace and, depending on the loader, on `default`.
 */
export async function loadPeer<T extends object>(name: string, option: string, marker: keyof T): Promise<T> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(name)) as Record<string, unknown>;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InvalidOptionsError(`${option} needs the optional peer dependency "${name}": install it (npm install ${name}) or turn ${option} off (${why})`);
  }
  if (marker in mod) return mod as T;
  const fallback = mod.default as Record<string, unknown> | undefined;
  if (fallback && typeof fallback === 'object' && marker in fallback) return fallback as T;
  throw new InvalidOptionsError(`${option}: the installed "${name}" does not export ${String(marker)}; is it a supported version?`);
}
