import { InvalidOptionsError } from '../errors/jetstream-errors.js';

// What nats-server parses in Nats-TTL: a Go duration, whole seconds, or "never" (ADR-43).
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

/**
 * The `Nats-TTL` value of a publish's `ttl`: milliseconds become a Go duration, strings pass
 * when the server can parse them. The server's floor is one second; shorter numbers are
 * refused here, with the unit named, rather than as the server's bare "invalid per-message TTL".
 */
export function messageTtl(ttl: number | string): string {
  if (typeof ttl === 'number') {
    if (!Number.isInteger(ttl) || ttl < 1000) {
      throw new InvalidOptionsError(`ttl must be a whole number of milliseconds, at least 1000 (the server's minimum is 1 s), got ${ttl}`);
    }
    return `${ttl}ms`;
  }
  if (ttl === 'never' || GO_DURATION.test(ttl) || /^\d+$/.test(ttl)) return ttl;
  throw new InvalidOptionsError(`ttl ${JSON.stringify(ttl)} is not a duration: use milliseconds, a Go duration such as '90s', '10m' or '1h30m', or 'never'`);
}
