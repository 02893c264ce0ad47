/** Strips `user:pass@` from server URLs so credentials never reach a log line. */
export function redactServer(server: string): string {
  return server.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/\s]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ''}***@`);
}

export function redactServers(servers: readonly string[]): string[] {
  return servers.map(redactServer);
}

/**
 * Error messages from the client can echo the URL it dialled; scrub anything URL-shaped
 * before logging.
 */
export function redactText(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s]*@/gi, '$1***@');
}
