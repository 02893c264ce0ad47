import type { INestApplicationContext } from '@nestjs/common';
import { scopedToken } from '../module/connection-tokens.js';
import type { JetStreamPublisher, PublishOptions, PublishResult } from '../producer/jetstream-publisher.js';
import { WAIT_TIMEOUT_MS, waitForMatches } from './wait-for-matches.js';

export interface CapturedPublish {
  readonly subject: string;
  readonly payload: unknown;
  readonly options: PublishOptions | undefined;
  /** Set once the stream acknowledged it. */
  result?: PublishResult;
  /** Set when the publish failed. */
  error?: Error;
}

export interface PublishCapture {
  readonly published: readonly CapturedPublish[];
  /** Captured publishes to a subject (or all). */
  to(subject?: string): CapturedPublish[];
  /**
   * Resolves once `count` publishes (to `subject`, when given) were acknowledged or failed;
   * `timeoutMs` defaults to 4 000 ms, under the runners' 5 s test timeout (as `recordHandled`).
   */
  waitFor(options?: { subject?: string; count?: number; timeoutMs?: number }): Promise<CapturedPublish[]>;
  /** Puts the publisher back as it was. */
  restore(): void;
}

/**
 * Records what an application publishes through `JetStreamPublisher` (single publishes and
 * batches), while still sending it to the real server unless `passThrough` is false, in which
 * case each publish resolves with a fake ack (`stream: 'captured'`) and nothing is sent.
 */
export function capturePublished(app: INestApplicationContext, options: { passThrough?: boolean; connection?: string } = {}): PublishCapture {
  const publisher = app.get<JetStreamPublisher>(scopedToken('publisher', options.connection), { strict: false });
  const original = publisher.publish;
  const published: CapturedPublish[] = [];
  const waiters = new Set<() => void>();
  let fakeSeq = 0;
  const settle = () => {
    for (const wake of waiters) wake();
  };
  publisher.publish = async function <T>(this: JetStreamPublisher, subject: string, payload: T, publishOptions?: PublishOptions) {
    const entry: CapturedPublish = { subject, payload, options: publishOptions };
    published.push(entry);
    try {
      entry.result =
        options.passThrough === false
          ? { stream: 'captured', seq: ++fakeSeq, duplicate: false }
          : await original.call(this, subject, payload, publishOptions);
      return entry.result;
    } catch (err) {
      entry.error = err as Error;
      throw err;
    } finally {
      settle();
    }
  };
  const to = (subject?: string) => published.filter((p) => !subject || p.subject === subject);
  return {
    published,
    to,
    restore: () => {
      publisher.publish = original;
    },
    waitFor({ subject, count = 1, timeoutMs = WAIT_TIMEOUT_MS } = {}) {
      const done = () => to(subject).filter((p) => p.result || p.error);
      return waitForMatches(waiters, done, count, timeoutMs, (found) => `${found} of ${count} publishes${subject ? ` to ${subject}` : ''}`);
    },
  };
}
