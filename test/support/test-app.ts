import { ConsoleLogger, type INestApplicationContext, type LoggerService, type ModuleMetadata, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

/** Collects every log line so tests can assert on what an operator would see. */
export class CapturingLogger extends ConsoleLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string; context?: string }> = [];

  constructor(private readonly echo = process.env.TEST_LOGS === '1') {
    super();
  }

  private record(level: string, message: unknown, rest: unknown[]): void {
    const context = typeof rest[rest.length - 1] === 'string' ? (rest[rest.length - 1] as string) : undefined;
    this.lines.push({ level, message: message instanceof Error ? message.message : String(message), context });
  }

  override log(message: unknown, ...rest: unknown[]): void {
    this.record('log', message, rest);
    if (this.echo) super.log(message, ...(rest as [string]));
  }
  override error(message: unknown, ...rest: unknown[]): void {
    this.record('error', message, rest);
    if (this.echo) super.error(message, ...(rest as [string]));
  }
  override warn(message: unknown, ...rest: unknown[]): void {
    this.record('warn', message, rest);
    if (this.echo) super.warn(message, ...(rest as [string]));
  }
  override debug(message: unknown, ...rest: unknown[]): void {
    this.record('debug', message, rest);
    if (this.echo) super.debug(message, ...(rest as [string]));
  }
  override verbose(message: unknown, ...rest: unknown[]): void {
    this.record('verbose', message, rest);
  }

  /** Lines at a level (or any level) whose message contains the text. */
  find(text: string | RegExp, level?: string): Array<{ level: string; message: string }> {
    return this.lines.filter(
      (l) => (!level || l.level === level) && (typeof text === 'string' ? l.message.includes(text) : text.test(l.message)),
    );
  }

  /** Everything logged, one line each: for "no secret in any log line" checks. */
  text(): string {
    return this.lines.map((l) => `${l.level} ${l.context ?? ''} ${l.message}`).join('\n');
  }
}

export interface TestApp {
  readonly app: INestApplicationContext;
  readonly logger: CapturingLogger;
  close(): Promise<void>;
}

/**
 * Boots a standalone Nest application (no HTTP) from module metadata, the way a worker service
 * runs, with logs captured. `close()` is idempotent so `afterEach` can always call it.
 */
export async function startApp(metadata: ModuleMetadata, logger = new CapturingLogger()): Promise<TestApp> {
  @Module(metadata)
  class TestRootModule {}
  const app = await NestFactory.createApplicationContext(TestRootModule, { logger, abortOnError: false });
  await app.init();
  let closed: Promise<void> | undefined;
  return {
    app,
    logger,
    close: () => (closed ??= app.close()),
  };
}
