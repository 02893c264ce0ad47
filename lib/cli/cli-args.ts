import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in the command line: exit code 2 and the command's usage. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Flags every command accepts: where to connect, how to authenticate, how to print. */
export const GLOBAL_OPTIONS = {
  server: { type: 'string', short: 's' },
  creds: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  token: { type: 'string' },
  nkey: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export type Flags = Record<string, string | boolean | undefined>;

export interface ParsedArgs {
  readonly flags: Flags;
  readonly positionals: string[];
}

/** Strict parsing: an unknown flag or a flag without its value is a usage error, not a guess. */
export function parseCommandArgs(argv: readonly string[], options: OptionSpec, command: string): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
    return { flags: values as Flags, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''), command);
  }
}

/** Positionals only, without knowing the command's flags yet (to find out which command it is). */
export function peekPositionals(argv: readonly string[], allOptions: OptionSpec): string[] {
  const { positionals } = parseArgs({ args: [...argv], options: { ...GLOBAL_OPTIONS, ...allOptions }, allowPositionals: true, strict: false });
  return positionals;
}

export function stringFlag(flags: Flags, name: string): string | undefined {
  const value = flags[name];
  return typeof value === 'string' ? value : undefined;
}

export function intArg(value: string | undefined, what: string, command: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < min) {
    throw new UsageError(`${what} must be an integer >= ${min}, got "${value}"`, command);
  }
  return Number(value);
}
