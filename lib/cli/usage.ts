const CONNECTION = `Connection (every command that talks to NATS):
  -s, --server <url>       NATS server(s), comma-separated (env NATS_URL; default nats://127.0.0.1:4222);
                           the server used is printed on stderr
      --creds <file>       credentials file (env NATS_CREDS)
      --nkey <file>        nkey seed file (env NATS_NKEY)
      --user <name>        user (env NATS_USER), with --password <pw> (env NATS_PASSWORD)
      --token <token>      token (env NATS_TOKEN)
      --tls-ca <file>      CA certificate; --tls-cert <file> --tls-key <file> for a client certificate
      --timeout <ms>       connect and API timeout (default 5000)
Output:
      --json               machine-readable output on stdout
  -v, --verbose            connection logs on stderr, stack traces on errors
  -h, --help               this help`;

const COMMANDS: Record<string, string> = {
  dlq: `Dead letters (stream DLQ unless --stream):
  nestjs-jetstream dlq list [--consumer <name>] [--original-stream <s>] [--subject <subj>] [--limit <n>] [--stream <dlq>]
  nestjs-jetstream dlq show <seq> [--stream <dlq>]
  nestjs-jetstream dlq redrive <seq> [--stream <dlq>]
  nestjs-jetstream dlq redrive --all [--consumer <name>] [--original-stream <s>] [--subject <subj>] [--stream <dlq>]
  nestjs-jetstream dlq delete <seq> [--stream <dlq>]
  nestjs-jetstream dlq purge --yes [--consumer <name>] [--original-stream <s>] [--subject <subj>] [--stream <dlq>]
  --consumer is the consumer (the handler's durable name) that dead-lettered the message; --subject
  its original subject. --durable is the deprecated name of --consumer.`,
  consumers: `Consumers and their lag:
  nestjs-jetstream consumers [list] [--stream <stream>]
  nestjs-jetstream consumers pause <stream> <consumer> (--until <ISO 8601> | --for <n>s|m|h|d)
  nestjs-jetstream consumers resume <stream> <consumer>
  PENDING: messages of the filter not delivered yet; ACK PENDING: delivered, not acknowledged yet.
  pause (nats-server 2.11+): the server delivers nothing to the consumer until then, to any app;
  its messages wait in the stream. resume: delivers again at once.`,
  replay: `Replay a consumer (a handler's durable) from a stream sequence or a time:
  nestjs-jetstream replay <stream> <consumer> (--from-seq <n> | --from-time <ISO 8601>) --yes [--recreate]
                          [--idempotency-bucket <name>]
  On nats-server 2.14+ the consumer is reset in place: safe while apps consume; they receive the
  messages again. Exactly-once handlers skip those acknowledged before the replay, which the
  replay notes in their idempotency bucket (--idempotency-bucket if the app sets another).
  --recreate deletes and recreates the consumer instead (older servers, or deliver policy new/last):
  stop the apps first, and set deliverPolicy: { startSequence } on the handler, or it will refuse to start.`,
  schedules: `Server-side schedules (nats-server 2.12+): those declared in forRoot and publisher.schedule() one-shots:
  nestjs-jetstream schedules [list] [--stream <stream>]
  nestjs-jetstream schedules cancel <stream> <name> --yes
  A cancelled declared schedule comes back when its app starts; remove it from the code too.`,
  asyncapi: `AsyncAPI 3.0 document of an application's @OnEvent, @EventPattern and @MessagePattern handlers (nothing connects):
  nestjs-jetstream asyncapi <compiled module file> [--export AppModule] [--out <file>]
                   [--title <title>] [--api-version <version>] [--description <text>]
  The file is JavaScript (e.g. dist/app.module.js); --export names the module class (default AppModule).`,
};

const SUMMARY = `Usage: nestjs-jetstream <command> [options]

Commands:
  dlq list|show|redrive|delete|purge   browse and act on dead letters
  consumers [list|pause|resume]        consumers with pending and ack-pending counts; pause, resume
  replay <stream> <consumer>           re-deliver a consumer's messages from a sequence or a time
  schedules [list|cancel]              server-side schedules: list them, cancel one
  asyncapi <module file>               print the AsyncAPI 3.0 document of an app
  help [command]                       help on a command

Exit codes: 0 ok, 1 operational error, 2 usage error.`;

export function usage(command?: string): string {
  const specific = command ? COMMANDS[command] : undefined;
  if (specific) return `${specific}\n\n${command === 'asyncapi' ? OUTPUT_ONLY : CONNECTION}\n`;
  return `${SUMMARY}\n\n${Object.values(COMMANDS).join('\n\n')}\n\n${CONNECTION}\n`;
}

export function isCommand(name: string | undefined): boolean {
  return name !== undefined && name in COMMANDS;
}

const OUTPUT_ONLY = `Output: the document as JSON, on stdout unless --out.
  -v, --verbose            stack traces on errors
  -h, --help               this help`;
