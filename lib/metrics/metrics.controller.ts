import { Controller, Get, Inject, Res, type Type } from '@nestjs/common';
import type { MetricsRegistry } from '../options/observability-options.js';

/** The registry the endpoint serves: the one the module's metrics are recorded in. */
export const JETSTREAM_METRICS_REGISTRY = Symbol('JETSTREAM_METRICS_REGISTRY');

// Prometheus text format 0.0.4: what prom-client's default registry declares.
const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

/** What Express's `res` and Fastify's `reply` both offer, so the controller runs on either platform. */
interface HeaderSetter {
  header(name: string, value: string): unknown;
}

/**
 * A controller class per route: a route is fixed by `@Controller(path)` when the class is
 * decorated, so a configurable path needs a class made for it.
 */
export function createMetricsController(path: string): Type<unknown> {
  @Controller(path)
  class JetStreamMetricsController {
    constructor(@Inject(JETSTREAM_METRICS_REGISTRY) private readonly registry: MetricsRegistry) {}

    @Get()
    async scrape(@Res({ passthrough: true }) res: HeaderSetter): Promise<string> {
      const text = await this.registry.metrics();
      res.header('Content-Type', this.registry.contentType ?? PROMETHEUS_TEXT);
      return text;
    }
  }
  return JetStreamMetricsController;
}
