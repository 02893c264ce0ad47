/**
 * `@EventPattern`/`@MessagePattern` metadata of a method, read by the keys' string values:
 * `@nestjs/microservices` is an optional peer, and the document must be buildable without it.
 * The keys and values are those of Nest 11 and 12 (`PATTERN_METADATA`, `PATTERN_HANDLER_METADATA`,
 * `TRANSPORT_METADATA`, `PATTERN_EXTRAS_METADATA`, `PatternHandler`, `RpcParamtype.PAYLOAD`).
 */
const PATTERN = 'microservices:pattern';
const HANDLER_TYPE = 'microservices:handler_type';
const TRANSPORT = 'microservices:transport';
const EXTRAS = 'microservices:pattern_extras';
const ROUTE_ARGUMENTS = '__routeArguments__';
const MESSAGE_HANDLER = 1;
const EVENT_HANDLER = 2;
const RPC_PAYLOAD = 3;

/** `JETSTREAM_TRANSPORT` of the transport entry point; `Symbol.for` so no import is needed. */
const JETSTREAM_TRANSPORT = Symbol.for('nestjs-jetstream');

export interface PatternMetadata {
  readonly kind: 'event' | 'message';
  /** The patterns as JetStreamServer registers them (Nest's route form of each). */
  readonly subjects: string[];
  readonly extras: Record<string, unknown>;
}

/**
 * The pattern handler a method declares, when JetStreamServer would serve it: bound to no
 * transport (every server of the app serves it) or to `JETSTREAM_TRANSPORT`.
 */
export function readPatternMetadata(method: unknown): PatternMetadata | undefined {
  if (typeof method !== 'function') return undefined;
  const patterns: unknown = Reflect.getMetadata(PATTERN, method);
  const type: unknown = Reflect.getMetadata(HANDLER_TYPE, method);
  if (!Array.isArray(patterns) || (type !== EVENT_HANDLER && type !== MESSAGE_HANDLER)) return undefined;
  const transport: unknown = Reflect.getMetadata(TRANSPORT, method);
  if (transport !== undefined && transport !== JETSTREAM_TRANSPORT) return undefined;
  const extras: unknown = Reflect.getMetadata(EXTRAS, method);
  return {
    kind: type === EVENT_HANDLER ? 'event' : 'message',
    subjects: patterns.map((p) => patternToRoute(p)),
    extras: extras && typeof extras === 'object' ? (extras as Record<string, unknown>) : {},
  };
}

/**
 * Index of the `@Payload()` parameter; 0 without one, as Nest then passes the data first.
 * Route arguments are keyed `"<paramtype>:<index>"` on the class, per method.
 */
export function payloadParameterIndex(cls: object, methodName: string): number {
  const args: unknown = Reflect.getMetadata(ROUTE_ARGUMENTS, cls, methodName);
  if (!args || typeof args !== 'object') return 0;
  for (const key of Object.keys(args)) {
    const [type, index] = key.split(':').map(Number);
    if (type === RPC_PAYLOAD && Number.isInteger(index)) return index;
  }
  return 0;
}

/**
 * Nest's `transformPatternToRoute`: strings and numbers as they are, objects as JSON with sorted
 * keys. The server registers (and subscribes to) this form, so the document names it too.
 */
function patternToRoute(pattern: unknown): string {
  if (typeof pattern === 'string' || typeof pattern === 'number') return `${pattern}`;
  if (!pattern || typeof pattern !== 'object') return String(pattern);
  const record = pattern as Record<string, unknown>;
  const parts = Object.keys(record)
    .sort((a, b) => a.localeCompare(b))
    .map((key) => {
      const value = record[key];
      return `"${escape(key)}":${typeof value === 'string' ? `"${escape(value)}"` : patternToRoute(value)}`;
    });
  return `{${parts.join(',')}}`;
}

function escape(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}
