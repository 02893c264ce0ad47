import { Injectable } from '@nestjs/common';
import { JetStreamConnection } from '../connection/jetstream-connection.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { consumerPauseState, pauseConsumer, resumeConsumer, type ConsumerPauseState } from '../provisioning/consumer-pause.js';
import { JetStreamLifecycle } from './jetstream-lifecycle.js';

/** A consumer: the durable name of one of this app's handlers, or any stream's consumer. */
export type ConsumerRef = string | { readonly stream: string; readonly consumer: string };

/**
 * Pauses and resumes consumers on the server (nats-server 2.11+): every instance of the app
 * stops receiving that handler's messages at once, and nothing is dead-lettered meanwhile; the
 * messages wait in the stream. Use it when a dependency of a handler is known to be down.
 */
@Injectable()
export class ConsumerControl {
  constructor(
    private readonly connection: JetStreamConnection,
    private readonly lifecycle: JetStreamLifecycle,
  ) {}

  /** Pauses until a time, or for a number of milliseconds from now. */
  async pause(ref: ConsumerRef, until: Date | number): Promise<ConsumerPauseState> {
    const { stream, consumer } = this.resolve(ref);
    const at = typeof until === 'number' ? new Date(Date.now() + until) : until;
    return pauseConsumer(this.connection, stream, consumer, at);
  }

  async resume(ref: ConsumerRef): Promise<ConsumerPauseState> {
    const { stream, consumer } = this.resolve(ref);
    return resumeConsumer(this.connection, stream, consumer);
  }

  async state(ref: ConsumerRef): Promise<ConsumerPauseState> {
    const { stream, consumer } = this.resolve(ref);
    return consumerPauseState(this.connection, stream, consumer);
  }

  private resolve(ref: ConsumerRef): { stream: string; consumer: string } {
    if (typeof ref !== 'string') return ref;
    const running = this.lifecycle.handlers.filter((h) => h.consumer === ref);
    if (running.length === 0) {
      const names = this.lifecycle.handlers.map((h) => h.consumer);
      throw new InvalidOptionsError(
        `No handler of this app consumes through "${ref}" (its consumers: ${names.length ? names.join(', ') : 'none'}); pass { stream, consumer } for another app's consumer`,
      );
    }
    return { stream: running[0].stream, consumer: ref };
  }
}
