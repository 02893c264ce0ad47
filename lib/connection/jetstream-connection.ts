import { Logger } from '@nestjs/common';
import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { ConnectionFailedError, describeCause } from '../errors/jetstream-errors.js';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { PermissionDenials } from './permission-denials.js';
import { redactServers, redactText } from './redact.js';

const MIN_SERVER = [2, 10, 0] as const;

/** `reconnecting`: the link dropped and the client is trying servers; `closed`: for good. */
export type ConnectionState = 'connected' | 'reconnecting' | 'closed';

/**
 * The module's one NATS connection with its JetStream client and manager. Exported so that
 * applications can reach the raw client for what the module does not wrap.
 */
export class JetStreamConnection {
  private readonly logger = new Logger('JetStream');
  private closing?: Promise<void>;
  /** Permission violations the server reported, for startup checks that would otherwise pass silently. */
  readonly permissions: PermissionDenials;
  private linkDown = false;

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    private readonly servers: readonly string[],
  ) {
    this.permissions = new PermissionDenials(nc);
    this.watchStatus().catch(() => undefined);
  }

  static async open(options: ResolvedModuleOptions): Promise<JetStreamConnection> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        name: 'nestjs-jetstream',
        // The client's default (10 attempts) closes the connection after ~20 s of outage and
        // with it every consumer; an event bus must outlive a broker restart.
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1_000,
        timeout: 5_000,
        // Otherwise every request (each publish, confirmed ack and idempotency write) builds two
        // Error objects up front, stack traces included, only to name the caller if it times
        // out: the largest cost on those paths in profiles. Our errors name subject and operation.
        noAsyncTraces: true,
        ...options.connection,
        servers: options.servers,
      });
    } catch (err) {
      throw new ConnectionFailedError(redactServers(options.servers), explainConnectFailure(redactText(describeCause(err)), options));
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: options.publishTimeoutMs });
      const js = jetstream(nc, { timeout: options.publishTimeoutMs });
      const connection = new JetStreamConnection(nc, js, jsm, options.servers);
      connection.checkServerVersion();
      return connection;
    } catch (err) {
      await nc.close().catch(() => undefined);
      const cause = redactText(describeCause(err));
      // "Start with -js" would send an operator after the wrong fix when permissions are the cause.
      const denied = /permissions violation/i.test(cause);
      throw new ConnectionFailedError(
        redactServers(options.servers),
        denied
          ? `connected, but the NATS user may not use JetStream (${cause}); JetStream needs publish on "$JS.API.>" and subscribe on the reply inbox prefix ("_INBOX.>" by default)`
          : `connected, but JetStream is not available (${cause}); start nats-server with -js`,
      );
    }
  }

  /** Version of the server this connection is on, e.g. `2.15.1`. */
  get serverVersion(): string {
    return this.nc.info?.version ?? '0.0.0';
  }

  /** True when the connected server is at least the given version. */
  serverAtLeast(major: number, minor: number, patch = 0): boolean {
    const [a = 0, b = 0, c = 0] = this.serverVersion.split(/[.-]/).map((n) => Number.parseInt(n, 10));
    if (a !== major) return a > major;
    if (b !== minor) return b > minor;
    return c >= patch;
  }

  get isClosed(): boolean {
    return this.nc.isClosed();
  }

  /** What health checks report: connected, reconnecting after a drop, or closed. */
  get state(): ConnectionState {
    if (this.nc.isClosed()) return 'closed';
    return this.linkDown ? 'reconnecting' : 'connected';
  }

  /** Pushes pending acks out, then drains subscriptions and closes. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.nc.isClosed()) return;
    try {
      await this.nc.flush();
    } catch {
      // A connection that cannot flush cannot drain either; close below still runs.
    }
    try {
      await this.nc.drain();
    } catch (err) {
      this.logger.warn(`Drain failed (${redactText(describeCause(err))}); closing the connection`);
      await this.nc.close().catch(() => undefined);
    }
  }

  private checkServerVersion(): void {
    const [major, minor, patch] = MIN_SERVER;
    if (!this.serverAtLeast(major, minor, patch)) {
      this.logger.warn(
        `nats-server ${this.serverVersion} is older than ${MIN_SERVER.join('.')}, the oldest version this module supports; consumer updates and term reasons may not behave as documented`,
      );
    }
    this.logger.log(`Connected to NATS ${this.serverVersion} at ${redactServers(this.servers).join(', ')}`);
  }

  private async watchStatus(): Promise<void> {
    for await (const status of this.nc.status()) {
      this.logStatus(status);
    }
    this.logger.log('NATS connection closed');
  }

  private logStatus(status: Status): void {
    if (status.type === 'disconnect') this.linkDown = true;
    else if (status.type === 'reconnect') this.linkDown = false;
    switch (status.type) {
      case 'disconnect':
        this.logger.warn(`Disconnected from NATS ${redactText(status.server)}; reconnecting`);
        break;
      case 'reconnect':
        this.logger.log(`Reconnected to NATS ${redactText(status.server)}`);
        break;
      case 'error':
        this.logger.error(`NATS connection error: ${redactText(describeCause(status.error))}`);
        break;
      case 'ldm':
        this.logger.warn(`NATS server ${redactText(status.server)} entered lame-duck mode; will move to another server`);
        break;
      case 'staleConnection':
        this.logger.warn('NATS connection is stale (missed pings); reconnecting');
        break;
      case 'slowConsumer':
        this.logger.warn(`NATS slow consumer: ${status.pending} messages pending on a subscription`);
        break;
      default:
        // reconnecting attempts, pings and cluster updates are noise at the default level
        this.logger.debug?.(`NATS status: ${status.type}`);
    }
  }
}

/**
 * A server that requires a client certificate (`tls { verify: true }`) drops a TLS 1.3 client
 * that has none only after the client's handshake completed, so the client sees a plain
 * timeout. Say what the likely cause is instead of leaving the operator with "timeout".
 */
function explainConnectFailure(cause: string, options: ResolvedModuleOptions): string {
  const tls = options.connection.tls;
  if (/timeout/i.test(cause) && tls && !tls.certFile && !tls.cert) {
    return `${cause} (with TLS but no client certificate: if the server requires one (tls verify), set connection.tls.certFile and keyFile)`;
  }
  return cause;
}

