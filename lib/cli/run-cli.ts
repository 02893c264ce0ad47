import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { redactText } from '../connection/redact.js';
import { describeCause } from '../errors/jetstream-errors.js';
import { ASYNCAPI_OPTIONS, parseAsyncApiCommand, runAsyncApiCommand } from './asyncapi-command.js';
import { parseCommandArgs, peekPositionals, UsageError, type Flags, type OptionSpec } from './cli-args.js';
import type { CliSession } from './cli-connection.js';
import type { CliIo } from './cli-output.js';
import { CONSUMERS_OPTIONS, parseConsumersCommand, runConsumersCommand } from './consumers-command.js';
import { DLQ_OPTIONS, parseDlqCommand, runDlqCommand } from './dlq-command.js';
import { parseReplayCommand, REPLAY_OPTIONS, runReplayCommand } from './replay-command.js';
import { isCommand, usage } from './usage.js';
import { parseSchedulesCommand, runSchedulesCommand, SCHEDULES_OPTIONS } from './schedules-command.js';

const OPTIONS: Record<string, OptionSpec> = {
  dlq: DLQ_OPTIONS,
  consumers: CONSUMERS_OPTIONS,
  replay: REPLAY_OPTIONS,
  schedules: SCHEDULES_OPTIONS,
  asyncapi: ASYNCAPI_OPTIONS,
};
const ALL_OPTIONS: OptionSpec = Object.assign({}, ...Object.values(OPTIONS));

/** A command checked and ready: runs with a session, or without one (asyncapi). */
type Prepared =
  | { readonly needsNats: true; run(session: CliSession, json: boolean): Promise<void> }
  | { readonly needsNats: false; run(): Promise<void> };

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * Runs one command line and returns its exit code: 0 ok, 1 the operation failed (one line on
 * stderr, the stack with --verbose), 2 the command line is wrong (with the command's usage).
 * Secrets given on the command line or in the environment never appear in what it prints.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let command: string | undefined;
  let verbose = argv.includes('--verbose') || argv.includes('-v');
  let secrets: readonly string[] = [];
  try {
    if (argv.length === 0) throw new UsageError('no command given');
    if (argv[0] === '--version') {
      io.out(`${packageVersion()}\n`);
      return EXIT_OK;
    }
    const words = peekPositionals(argv, ALL_OPTIONS);
    if (words[0] === 'help' || ((argv.includes('--help') || argv.includes('-h')) && !isCommand(words[0]))) {
      io.out(usage(isCommand(words[1]) ? words[1] : undefined));
      return EXIT_OK;
    }
    command = words[0];
    if (!isCommand(command)) {
      const unknown = command;
      command = undefined;
      throw new UsageError(unknown ? `unknown command "${unknown}"` : 'no command given');
    }
    const { flags, positionals } = parseCommandArgs(argv, OPTIONS[command], command);
    verbose = flags.verbose === true;
    if (flags.help === true) {
      io.out(usage(command));
      return EXIT_OK;
    }
    const prepared = prepare(command, positionals.slice(1), flags, io);
    if (!prepared.needsNats) {
      await prepared.run();
      return EXIT_OK;
    }
    // Loaded only now: help and usage errors answer without loading Nest and the NATS client.
    const { connectionSettings, openSession } = await import('./cli-connection.js');
    const settings = connectionSettings(flags, io, command);
    secrets = settings.secrets;
    const session = await openSession(settings, io, verbose);
    try {
      await prepared.run(session, flags.json === true);
    } finally {
      await session.close();
    }
    return EXIT_OK;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`nestjs-jetstream: ${err.message}\n\n${usage(err.command ?? command)}`);
      return EXIT_USAGE;
    }
    const scrub = (text: string) => secrets.reduce((t, s) => (s ? t.split(s).join('***') : t), redactText(text));
    io.err(`nestjs-jetstream: error: ${scrub(describeCause(err)).replace(/\s*\n\s*/g, ' ')}\n`);
    if (verbose && err instanceof Error && err.stack) io.err(`${scrub(err.stack)}\n`);
    return EXIT_FAILURE;
  }
}

function prepare(command: string, positionals: string[], flags: Flags, io: CliIo): Prepared {
  switch (command) {
    case 'dlq': {
      const parsed = parseDlqCommand(positionals, flags, io);
      return { needsNats: true, run: (session, json) => runDlqCommand(parsed, session, io, json) };
    }
    case 'consumers': {
      const parsed = parseConsumersCommand(positionals, flags);
      return { needsNats: true, run: (session, json) => runConsumersCommand(parsed, session, io, json) };
    }
    case 'replay': {
      const parsed = parseReplayCommand(positionals, flags);
      return { needsNats: true, run: (session, json) => runReplayCommand(parsed, session, io, json) };
    }
    case 'schedules': {
      const parsed = parseSchedulesCommand(positionals, flags);
      return { needsNats: true, run: (session, json) => runSchedulesCommand(parsed, session, io, json) };
    }
    case 'asyncapi': {
      const parsed = parseAsyncApiCommand(positionals, flags);
      return { needsNats: false, run: () => runAsyncApiCommand(parsed, io) };
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function packageVersion(): string {
  // The CLI runs from the CommonJS build (dist/cjs/cli/), so __dirname is defined (import.meta
  // would not compile to CommonJS). The package's own package.json is the nearest one with its name.
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'nestjs-jetstream') return pkg.version ?? 'unknown';
    } catch {
      // no package.json here: look further up
    }
  }
  return 'unknown';
}
