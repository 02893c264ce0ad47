import type { PublishOptions } from '../producer/jetstream-publisher.js';

/**
 * What `JetStreamClient.emit()` sends when the caller needs publish options: the data plus a
 * msg-id, headers or expectations. Plain data is sent as is.
 */
export class JetStreamRecord<T = unknown> {
  constructor(
    readonly data: T,
    readonly options: PublishOptions = {},
  ) {}
}

/** Fluent builder for `JetStreamRecord`, in the style of Nest's own record builders. */
export class JetStreamRecordBuilder<T = unknown> {
  private options: PublishOptions = {};

  constructor(private data?: T) {}

  setData(data: T): this {
    this.data = data;
    return this;
  }

  setMsgId(msgId: string): this {
    this.options = { ...this.options, msgId };
    return this;
  }

  setHeaders(headers: Record<string, string | readonly string[]>): this {
    this.options = { ...this.options, headers: { ...this.options.headers, ...headers } };
    return this;
  }

  setTimeout(timeoutMs: number): this {
    this.options = { ...this.options, timeoutMs };
    return this;
  }

  setExpect(expect: NonNullable<PublishOptions['expect']>): this {
    this.options = { ...this.options, expect };
    return this;
  }

  build(): JetStreamRecord<T> {
    return new JetStreamRecord(this.data as T, this.options);
  }
}
