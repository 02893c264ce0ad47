import { Match, type MsgHdrs } from '@nats-io/transport-node';

/** A header's first value; HTTP-style names match whatever case another producer used. */
export function headerOf(headers: MsgHdrs, name: string): string | undefined {
  if (headers.has(name)) return headers.get(name);
  return headers.has(name, Match.IgnoreCase) ? headers.get(name, Match.IgnoreCase) : undefined;
}
