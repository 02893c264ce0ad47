import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Logger, type LoggerService } from '@nestjs/common';
import { credsAuthenticator, nkeyAuthenticator } from '@nats-io/transport-node';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { redactServer } from '../connection/redact.js';
import { DeadLetterService } from '../dead-letters/dead-letter.service.js';
import type { NatsConnectionOptions, ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { resolveModuleOptions } from '../options/resolve-module-options.js';
import { JetStreamPublisher } from '../producer/jetstream-publisher.js';
import { intArg, stringFlag, UsageError, type Flags } from './cli-args.js';
import type { CliIo } from './cli-output.js';

/** The library's own services, built without Nest, on one connection the command closes. */
export interface CliSession {
  readonly connection: JetStreamConnection;
  readonly publisher: JetStreamPublisher;
  readonly deadLetters: DeadLetterService;
  close(): Promise<void>;
}

export interface ConnectionSettings {
  readonly options: ResolvedModuleOptions;
  /** Values that must never reach the terminal, error messages included. */
  readonly secrets: readonly string[];
  /** Where the server list came from, printed with the server so a default is never used unnoticed. */
  readonly serverSource: '--server' | 'NATS_URL' | 'default';
}

/**
 * Flags first, then the environment (`NATS_URL`, `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`,
 * `NATS_CREDS`, `NATS_NKEY`). Authentication given by a flag replaces any from the environment,
 * so a shell's defaults cannot mix into an explicit choice.
 */
export function connectionSettings(flags: Flags, io: Pick<CliIo, 'env' | 'cwd'>, command: string): ConnectionSettings {
  const { env } = io;
  const flagAuth = {
    creds: stringFlag(flags, 'creds'),
    nkey: stringFlag(flags, 'nkey'),
    user: stringFlag(flags, 'user'),
    password: stringFlag(flags, 'password'),
    token: stringFlag(flags, 'token'),
  };
  const fromFlags = Object.values(flagAuth).some((v) => v !== undefined);
  const auth = fromFlags
    ? flagAuth
    : { creds: env.NATS_CREDS, nkey: env.NATS_NKEY, user: env.NATS_USER, password: env.NATS_PASSWORD, token: env.NATS_TOKEN };
  const where = fromFlags ? 'flags' : 'environment';
  const methods = [auth.creds && 'creds', auth.nkey && 'nkey', (auth.user || auth.password) && 'user/password', auth.token && 'token'].filter(Boolean);
  if (methods.length > 1) throw new UsageError(`choose one authentication method; the ${where} give ${methods.join(', ')}`, command);
  if (auth.password !== undefined && auth.user === undefined) throw new UsageError(`a password needs a user (--user or NATS_USER)`, command);

  const timeoutMs = intArg(stringFlag(flags, 'timeout'), '--timeout', command) ?? 5_000;
  const connection: NatsConnectionOptions = {
    name: 'nestjs-jetstream-cli',
    timeout: timeoutMs,
    // A command is short: a lost connection should fail it, not keep it waiting forever.
    maxReconnectAttempts: 0,
  };
  const secrets: string[] = [];
  if (auth.creds) connection.authenticator = credsAuthenticator(readSecretFile(auth.creds, '--creds', io.cwd));
  if (auth.nkey) connection.authenticator = nkeyAuthenticator(readSecretFile(auth.nkey, '--nkey', io.cwd));
  if (auth.user !== undefined) {
    connection.user = auth.user;
    if (auth.password !== undefined) {
      connection.pass = auth.password;
      secrets.push(auth.password);
    }
  }
  if (auth.token) {
    connection.token = auth.token;
    secrets.push(auth.token);
  }
  const tls = { ca: stringFlag(flags, 'tls-ca'), cert: stringFlag(flags, 'tls-cert'), key: stringFlag(flags, 'tls-key') };
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new UsageError('--tls-cert and --tls-key go together', command);
  if (tls.ca || tls.cert) {
    connection.tls = {
      ...(tls.ca ? { caFile: resolve(io.cwd, tls.ca) } : {}),
      ...(tls.cert ? { certFile: resolve(io.cwd, tls.cert), keyFile: resolve(io.cwd, tls.key as string) } : {}),
    };
  }
  const options = resolveModuleOptions(
    { servers: stringFlag(flags, 'server'), connection, publishTimeoutMs: timeoutMs, publishRetries: 0 },
    env,
  );
  // Servers given as user:pass@host carry secrets too.
  for (const server of options.servers) {
    const userinfo = /^(?:[a-z][a-z0-9+.-]*:\/\/)?([^@/\s]+)@/i.exec(server)?.[1];
    if (userinfo) secrets.push(...userinfo.split(':').filter((s) => s.length > 0));
  }
  const serverSource = stringFlag(flags, 'server') !== undefined ? '--server' : env.NATS_URL !== undefined ? 'NATS_URL' : 'default';
  return { options, secrets, serverSource };
}

function readSecretFile(path: string, flag: string, cwd: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(resolve(cwd, path)));
  } catch (err) {
    // The path is the operator's own input; the content is never shown.
    throw new Error(`cannot read the ${flag} file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function openSession(settings: ConnectionSettings, io: CliIo, verbose: boolean): Promise<CliSession> {
  // The library logs through Nest's Logger; a command's stdout is for its output only.
  Logger.overrideLogger(verbose ? new StderrLogger(io) : false);
  const connection = await JetStreamConnection.open(settings.options);
  // On stderr, so --json output on stdout stays one parseable document.
  io.err(`nestjs-jetstream: server ${redactServer(connection.nc.getServer())} (${SOURCE_NOTE[settings.serverSource]})\n`);
  const publisher = new JetStreamPublisher(connection, settings.options);
  return {
    connection,
    publisher,
    deadLetters: new DeadLetterService(connection, publisher),
    close: () => connection.close(),
  };
}

const SOURCE_NOTE: Record<ConnectionSettings['serverSource'], string> = {
  '--server': 'from --server',
  NATS_URL: 'from NATS_URL',
  default: 'the default; choose one with --server or NATS_URL',
};

class StderrLogger implements LoggerService {
  constructor(private readonly io: CliIo) {}
  log(message: unknown, ...rest: unknown[]): void {
    this.write('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.write('debug', message, rest);
  }
  private write(level: string, message: unknown, rest: unknown[]): void {
    // Nest passes the context last (after an optional stack for errors).
    const context = rest.length > 0 && typeof rest[rest.length - 1] === 'string' ? rest[rest.length - 1] : 'nestjs-jetstream';
    this.io.err(`[${String(context)}] ${level}: ${String(message)}\n`);
  }
}
