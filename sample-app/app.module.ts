import { Module, type DynamicModule } from '@nestjs/common';
import { JetStreamInboxModule, JetStreamModule, JetStreamOutboxModule } from 'nestjs-jetstream';
import { OrderAnalyticsService } from './analytics/order-analytics.service.js';
import { AuditService } from './audit/audit.service.js';
import { BillingService } from './billing/billing.service.js';
import { CheckoutService } from './checkout/checkout.service.js';
import { SAMPLE_DATABASE, TABLES, type SampleDatabase } from './database/sample-database.js';
import { MetricsEndpoint, metricsRegistry } from './metrics/metrics-endpoint.js';
import { ShippingService } from './shipping/shipping.service.js';
import { OrderTracker } from './tracking/order-tracker.service.js';

/**
 * The database is opened before the application (main.ts) and closed after it, so the outbox
 * relay and the inbox handlers are stopped before their connection goes away.
 */
@Module({})
export class AppModule {
  static withDatabase(database: SampleDatabase): DynamicModule {
    return {
      module: AppModule,
      imports: [
        JetStreamModule.forRoot({
          // Unset NATS_URL falls back to nats://127.0.0.1:4222.
          servers: process.env.NATS_URL,
          connection: { name: 'orders-sample' },
          // Created at startup when missing: one stream holds every order event.
          streams: [{ name: 'ORDERS', subjects: ['orders.>'] }],
          // In-flight handlers get this long to finish when the application closes.
          shutdownTimeoutMs: 5_000,
          // Prometheus metrics (needs prom-client installed), served at /metrics by MetricsEndpoint.
          metrics: { registry: metricsRegistry, lagIntervalMs: 1_000 },
        }),
        // Checkout records orders.created in its own transaction; this app's relay publishes it.
        JetStreamOutboxModule.forRoot({ database, table: TABLES.outbox, ensureSchema: true }),
        // Billing's charge and its inbox row commit together (BillingService.charge).
        JetStreamInboxModule.forRoot({ database, table: TABLES.inbox, ensureSchema: true }),
      ],
      providers: [
        { provide: SAMPLE_DATABASE, useValue: database },
        OrderTracker,
        CheckoutService,
        BillingService,
        ShippingService,
        AuditService,
        OrderAnalyticsService,
        MetricsEndpoint,
      ],
    };
  }
}
