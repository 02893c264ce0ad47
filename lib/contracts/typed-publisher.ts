import type { JetStreamPublisher, PublishOptions, PublishResult } from '../producer/jetstream-publisher.js';
import { SCHEMA_NAME_HEADER, SCHEMA_VERSION_HEADER } from '../wire/schema-headers.js';
import type { Codec } from '../wire/codec.js';

/** What the facade needs of a subject's contract. */
interface Stamp {
  readonly name?: string;
  readonly version?: number;
  readonly codec?: Codec;
}

/**
 * `JetStreamPublisher` for a map of known subjects: a subject outside the map, or a payload of
 * the wrong type, does not compile. Publishes through the same publisher (retries, msg-ids,
 * errors), adding the subject's schema name and version headers and its codec.
 */
export class TypedPublisher<Events extends object> {
  constructor(
    readonly untyped: JetStreamPublisher,
    private readonly contractOf: (subject: string) => Stamp | undefined = () => undefined,
  ) {}

  publish<Subject extends keyof Events & string>(subject: Subject, payload: Events[Subject], options?: PublishOptions): Promise<PublishResult> {
    return this.untyped.publish(subject, payload, this.stamped(subject, options));
  }

  private stamped(subject: string, options: PublishOptions | undefined): PublishOptions | undefined {
    const contract = this.contractOf(subject);
    if (!contract || (contract.version === undefined && contract.name === undefined && !contract.codec)) return options;
    const headers: Record<string, string | readonly string[]> = { ...(options?.headers ?? {}) };
    if (contract.name !== undefined) headers[SCHEMA_NAME_HEADER] = contract.name;
    if (contract.version !== undefined) headers[SCHEMA_VERSION_HEADER] = String(contract.version);
    return { ...options, headers, codec: options?.codec ?? contract.codec };
  }
}

/** Types a publisher against an event map declared as an interface (subject → payload type). */
export function typedPublisher<Events extends object>(publisher: JetStreamPublisher): TypedPublisher<Events> {
  return new TypedPublisher<Events>(publisher);
}
