/** Module options after defaults and validation; inject it to read what the module runs with. */
export const JETSTREAM_RESOLVED_OPTIONS = Symbol('JETSTREAM_RESOLVED_OPTIONS');

/** Name of the connection a `JetStreamModule` instance owns; `'default'` when forRoot has no name. */
export const JETSTREAM_CONNECTION_NAME = Symbol('JETSTREAM_CONNECTION_NAME');

/** The connection of `JetStreamModule.forRoot()` without a name. */
export const DEFAULT_CONNECTION = 'default';

const CONNECTION_NAME = /^[A-Za-z0-9_-]+$/;

export function isDefaultConnection(name: string | undefined): boolean {
  return name === undefined || name === DEFAULT_CONNECTION;
}

export function assertConnectionName(name: unknown, where: string): asserts name is string | undefined {
  if (name !== undefined && (typeof name !== 'string' || !CONNECTION_NAME.test(name))) {
    throw new TypeError(`${where}: connection name must match ${CONNECTION_NAME} (letters, digits, "-" and "_"), got ${JSON.stringify(name)}`);
  }
}
