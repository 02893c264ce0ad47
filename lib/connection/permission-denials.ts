import { errors as natsErrors, type NatsConnection } from '@nats-io/transport-node';

export interface PermissionDenial {
  readonly operation: 'publish' | 'subscription';
  readonly subject: string;
  readonly message: string;
}

const KEPT = 64;

/**
 * Permission violations the server reported on the connection. The server answers a denied
 * plain publish (a pull request, say) only with an asynchronous -ERR, which the client surfaces
 * as a status event and nothing else: without this record, a consumer the user may not pull from
 * would start "successfully" and never receive a message.
 */
export class PermissionDenials {
  private readonly denials: PermissionDenial[] = [];
  private total = 0;

  constructor(private readonly nc: NatsConnection) {
    this.watch().catch(() => undefined);
  }

  /** A position to look for denials after (see `since`). */
  mark(): number {
    return this.total;
  }

  /**
   * Denials reported after `mark`, once the server has answered everything sent before this
   * call: a PING round trip (the server writes its -ERR before the PONG), then one macrotask so
   * the status events queued with it have been read.
   */
  async since(mark: number): Promise<PermissionDenial[]> {
    await this.nc.flush();
    await new Promise<void>((resolve) => setImmediate(resolve));
    const fresh = this.total - mark;
    return fresh <= 0 ? [] : this.denials.slice(-Math.min(fresh, this.denials.length));
  }

  private async watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type !== 'error' || !(status.error instanceof natsErrors.PermissionViolationError)) continue;
      const error = status.error;
      this.denials.push({ operation: error.operation === 'subscription' ? 'subscription' : 'publish', subject: error.subject, message: error.message });
      if (this.denials.length > KEPT) this.denials.shift();
      this.total++;
    }
  }
}
