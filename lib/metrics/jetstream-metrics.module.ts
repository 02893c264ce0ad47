import { Module, type DynamicModule } from '@nestjs/common';
import type { JetStreamConnection } from '../connection/jetstream-connection.js';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { scopedToken } from '../module/connection-tokens.js';
import type { ResolvedModuleOptions } from '../options/jetstream-module-options.js';
import { assertConnectionName, DEFAULT_CONNECTION } from '../options/jetstream.tokens.js';
import { JetStreamMetrics } from '../observability/metrics.js';
import type { MetricsRegistry } from '../options/observability-options.js';
import { createMetricsController, JETSTREAM_METRICS_REGISTRY } from './metrics.controller.js';

export interface JetStreamMetricsModuleOptions {
  /** Route of the endpoint, under the app's global prefix if it has one; default `metrics`. */
  path?: string;
  /** The `JetStreamModule.forRoot({ name })` connection whose metrics are served; default the unnamed one. */
  connection?: string;
}

/**
 * `GET /metrics` for Prometheus, serving the registry `JetStreamModule`'s `metrics` option
 * records in (its `registry`, or prom-client's default one). Opt-in: import it in an HTTP app;
 * prom-client is loaded only when it is, and only when no registry was given.
 */
@Module({})
export class JetStreamMetricsModule {
  static forRoot(options: JetStreamMetricsModuleOptions = {}): DynamicModule {
    const path = options.path ?? 'metrics';
    if (typeof path !== 'string' || path.trim().length === 0) {
      throw new InvalidOptionsError(`JetStreamMetricsModule: path must be a non-empty string, got ${JSON.stringify(options.path)}`);
    }
    try {
      assertConnectionName(options.connection, 'JetStreamMetricsModule');
    } catch (err) {
      throw new InvalidOptionsError((err as Error).message);
    }
    const connection = options.connection ?? DEFAULT_CONNECTION;
    return {
      module: JetStreamMetricsModule,
      controllers: [createMetricsController(path)],
      providers: [
        {
          provide: JETSTREAM_METRICS_REGISTRY,
          useFactory: (resolved: ResolvedModuleOptions, jetStream: JetStreamConnection) => servedRegistry(resolved, connection, jetStream),
          inject: [scopedToken('options', connection), scopedToken('connection', connection)],
        },
      ],
    };
  }
}

async function servedRegistry(options: ResolvedModuleOptions, connection: string, jetStream: JetStreamConnection): Promise<MetricsRegistry> {
  try {
    if (!options.metrics) {
      // Serving prom-client's empty default registry would look like a working endpoint with no traffic.
      const which = connection === DEFAULT_CONNECTION ? 'JetStreamModule.forRoot' : `JetStreamModule.forRoot({ name: '${connection}' })`;
      throw new InvalidOptionsError(`JetStreamMetricsModule serves the module's metrics, but ${which} has metrics off: set metrics: true (or { registry })`);
    }
    return await JetStreamMetrics.registryOf(options.metrics);
  } catch (err) {
    // Nest runs no shutdown hook when startup fails: the open connection would keep the process alive.
    await jetStream.close();
    throw err;
  }
}
