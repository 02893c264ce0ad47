import { Module } from '@nestjs/common';
import { JetStreamModule } from 'nestjs-jetstream';
import { OrderAnalyticsService } from './analytics/order-analytics.service.js';
import { AuditService } from './audit/audit.service.js';
import { BillingService } from './billing/billing.service.js';
import { CheckoutService } from './checkout/checkout.service.js';
import { MetricsEndpoint, metricsRegistry } from './metrics/metrics-endpoint.js';
import { ShippingService } from './shipping/shipping.service.js';
import { OrderTracker } from './tracking/order-tracker.service.js';

@Module({
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
  ],
  providers: [OrderTracker, CheckoutService, BillingService, ShippingService, AuditService, OrderAnalyticsService, MetricsEndpoint],
})
export class AppModule {}
