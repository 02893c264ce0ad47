import 'reflect-metadata';
import { Logger, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { CheckoutService } from './checkout/checkout.service.js';
import { checkDatabase, databaseSettled, openSampleDatabase, type DatabaseCheck, type SampleDatabase } from './database/sample-database.js';
import { MetricsEndpoint } from './metrics/metrics-endpoint.js';
import { OrderTracker, type SummaryRow } from './tracking/order-tracker.service.js';

const ORDER_COUNT = 5;
const DEADLINE_MS = Number(process.env.SAMPLE_DEADLINE_MS ?? 20_000);
const CLOSE_TIMEOUT_MS = 10_000;

const logger = new Logger('OrdersSample');

// The durables the tracker counts for, as declared by each handler's @OnEvent.
const HANDLERS: Record<SummaryRow['handler'], { method: string; subject: string }> = {
  billing: { method: 'BillingService.charge', subject: 'orders.created' },
  shipping: { method: 'ShippingService.ship', subject: 'orders.created' },
  audit: { method: 'AuditService.record', subject: 'orders.>' },
};

async function main(): Promise<number> {
  let db: SampleDatabase;
  try {
    db = await openSampleDatabase();
  } catch (err) {
    logger.error(`The database could not be opened: ${describe(err)}`);
    return 1;
  }
  try {
    return await runWith(db);
  } finally {
    // After the app has closed: the relay and the inbox handlers no longer use it.
    await db.close().catch((err: unknown) => logger.error(`Closing the database failed: ${describe(err)}`));
  }
}

async function runWith(db: SampleDatabase): Promise<number> {
  let app: INestApplicationContext;
  try {
    // No HTTP server: a standalone application context is all an event-driven worker needs.
    // abortOnError: false makes a failed startup throw here instead of exiting the process.
    app = await NestFactory.createApplicationContext(AppModule.withDatabase(db), {
      abortOnError: false,
      logger: ['fatal', 'error', 'warn', 'log'],
    });
  } catch (err) {
    logger.error(`The application could not start: ${describe(err)}`);
    return 1;
  }
  // SIGINT/SIGTERM close the app: consumers stop, in-flight handlers finish, the connection drains.
  app.enableShutdownHooks();

  let ok = false;
  try {
    const placed = await app.get(CheckoutService).placeOrders(ORDER_COUNT);
    logger.log(
      `run ${placed.runId}: committed ${placed.orderIds.length} orders with their orders.created in the outbox, published 1 orders.cancelled; waiting up to ${DEADLINE_MS} ms for billing, shipping and audit`,
    );
    const started = Date.now();
    const tracker = app.get(OrderTracker);
    const handled = await tracker.waitUntilComplete(DEADLINE_MS);
    printSummary(placed.runId, tracker.summary(), tracker.ignored);
    // A handler reports before its inbox transaction commits, and the relay marks rows after
    // their acks: read the database until it agrees, within what is left of the deadline.
    const check = await settleDatabase(db, placed.orderIds, Math.max(DEADLINE_MS - (Date.now() - started), 2_000));
    const settled = databaseSettled(check, placed.orderIds.length);
    printDatabaseCheck(db.driver, check, placed.orderIds.length);
    await printMetrics(app.get(MetricsEndpoint).url);
    ok = handled && settled;
    if (handled && !settled) logger.error('The database does not show every order charged exactly once with the outbox drained (above)');
    if (!handled) {
      const missing = tracker
        .summary()
        .filter((r) => r.handled < r.expected)
        .map((r) => `${r.handler} ${r.handled}/${r.expected}`)
        .join(', ');
      logger.error(`Deadline of ${DEADLINE_MS} ms passed before every handler was done (${missing})`);
    }
  } catch (err) {
    logger.error(`The sample failed: ${describe(err)}`);
  } finally {
    await closeApp(app);
  }
  return ok ? 0 : 1;
}

function printSummary(runId: string, rows: SummaryRow[], ignored: number): void {
  const header = ['handler', 'subject', 'durable', 'handled', 'expected', 'retries'];
  const body = rows.map((r) => [
    HANDLERS[r.handler].method,
    HANDLERS[r.handler].subject,
    r.handler,
    String(r.handled),
    String(r.expected),
    String(r.retries),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const rule = `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`;
  const out = [
    '',
    `Summary of run ${runId}`,
    line(header),
    rule,
    ...body.map(line),
    '',
  ];
  if (ignored > 0) {
    out.push(`(${ignored} ${ignored === 1 ? 'delivery' : 'deliveries'} of events from earlier runs acknowledged and not counted)`, '');
  }
  process.stdout.write(out.join('\n') + '\n');
}

async function settleDatabase(db: SampleDatabase, orderIds: readonly string[], withinMs: number): Promise<DatabaseCheck> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const check = await checkDatabase(db, orderIds);
    // More than one charge of an order is final: no later commit can undo it.
    const final = check.wrong.some((w) => w.charges > 1) || check.parked > 0;
    if (databaseSettled(check, orderIds.length) || final || Date.now() >= deadline) return check;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function printDatabaseCheck(driver: string, check: DatabaseCheck, expected: number): void {
  const mark = (good: boolean) => (good ? 'ok' : 'FAILED');
  const out = [
    `Database (${driver === 'pglite' ? 'PGlite in memory' : 'PostgreSQL, DATABASE_URL'}), counted with SQL:`,
    `  orders rows of this run:            ${check.orders}/${expected} ${mark(check.orders === expected)}`,
    `  orders with exactly one charge row: ${check.chargedOnce}/${expected} ${mark(check.chargedOnce === expected)}`,
    ...check.wrong.map((w) => `    ${w.orderId}: ${w.charges} charge rows`),
    `  outbox rows still to relay:         ${check.pending} ${mark(check.pending === 0)}`,
    `  outbox rows parked:                 ${check.parked} ${mark(check.parked === 0)}`,
    '',
  ];
  process.stdout.write(out.join('\n') + '\n');
}

/** What Prometheus would scrape: the consume and publish counters of this process. */
async function printMetrics(url: string): Promise<void> {
  try {
    const text = await (await fetch(url)).text();
    const lines = text.split('\n').filter((l) => /^nats_(consume|publish)_total\{/.test(l));
    process.stdout.write([`GET ${url} (nats_consume_total and nats_publish_total):`, ...lines, ''].join('\n') + '\n');
  } catch (err) {
    logger.warn(`Could not read ${url}: ${describe(err)}`);
  }
}

async function closeApp(app: INestApplicationContext): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`app.close() took longer than ${CLOSE_TIMEOUT_MS} ms`)), CLOSE_TIMEOUT_MS);
  });
  try {
    await Promise.race([app.close(), timeout]);
  } catch (err) {
    logger.error(`Shutdown failed: ${describe(err)}`);
  } finally {
    clearTimeout(timer);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

main().then(
  (code) => {
    process.exitCode = code;
    // Everything is closed by now; if some handle still holds the event loop, do not hang.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (err: unknown) => {
    logger.error(`Unexpected failure: ${describe(err)}`);
    process.exit(1);
  },
);
