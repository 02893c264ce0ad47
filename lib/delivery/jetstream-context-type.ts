import type { ArgumentsHost } from '@nestjs/common';

/** `ExecutionContext.getType()` of a JetStream handler call. */
export const JETSTREAM_CONTEXT_TYPE = 'jetstream';

/**
 * True inside a JetStream handler. Global guards and interceptors written for HTTP use it to
 * step aside: `if (isJetStreamContext(ctx)) return true;`.
 */
export function isJetStreamContext(host: ArgumentsHost): boolean {
  return host.getType<string>() === JETSTREAM_CONTEXT_TYPE;
}
