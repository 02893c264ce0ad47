import { Module, type DynamicModule } from '@nestjs/common';
import type { ModulesContainer } from '@nestjs/core';
import { InvalidOptionsError } from '../errors/jetstream-errors.js';
import { mergeStreamDeclarations, type StreamDeclaration } from '../provisioning/stream-declarations.js';
import type { ResolvedModuleOptions, StreamDefinition } from '../options/jetstream-module-options.js';
import { assertConnectionName, DEFAULT_CONNECTION, isDefaultConnection, JETSTREAM_CONNECTION_NAME } from '../options/jetstream.tokens.js';
import { checkStream } from '../options/resolve-module-options.js';

export interface JetStreamFeatureOptions {
  /** Streams this feature module owns, ensured at startup with the root's. */
  streams: StreamDefinition[];
  /** The `JetStreamModule.forRoot({ name })` connection they belong to; default the unnamed one. */
  connection?: string;
}

/** What one `forFeature()` declares; the root finds it among the application's providers. */
export class JetStreamFeatureDeclaration {
  constructor(
    readonly connection: string,
    readonly streams: readonly StreamDefinition[],
  ) {}
}

/** Holds one feature declaration; the connection itself stays the root's. */
@Module({})
export class JetStreamFeatureModule {}

export function buildFeatureModule(options: JetStreamFeatureOptions): DynamicModule {
  if (!options || typeof options !== 'object' || !Array.isArray(options.streams)) {
    throw new InvalidOptionsError('JetStreamModule.forFeature: options must be { streams: [...], connection? }');
  }
  try {
    assertConnectionName(options.connection, 'JetStreamModule.forFeature');
  } catch (err) {
    throw new InvalidOptionsError((err as Error).message);
  }
  const streams = options.streams.map((stream, i) => checkStream(stream, `JetStreamModule.forFeature: streams[${i}]`));
  const declaration = new JetStreamFeatureDeclaration(options.connection ?? DEFAULT_CONNECTION, streams);
  return { module: JetStreamFeatureModule, providers: [{ provide: JetStreamFeatureDeclaration, useValue: declaration }] };
}

/**
 * The root's options with the streams of every `forFeature()` of its connection merged in.
 * Read from the module graph when the root's options are resolved, before the connection opens,
 * so feature streams are provisioned with the root's. Value providers are in place from the
 * scan on, whatever order modules are instantiated in.
 */
export function withFeatureStreams(options: ResolvedModuleOptions, connection: string, modules: ModulesContainer): ResolvedModuleOptions {
  const declarations: StreamDeclaration[] = [{ source: rootName(connection), streams: options.streams }];
  for (const module of modules.values()) {
    for (const wrapper of module.providers.values()) {
      const value: unknown = wrapper.instance;
      if (!(value instanceof JetStreamFeatureDeclaration)) continue;
      const importers = [...modules.values()].filter((m) => m.imports.has(module)).map((m) => m.metatype.name);
      const source = `${importers.join(', ') || 'a module'} (JetStreamModule.forFeature)`;
      if (value.connection === connection) declarations.push({ source, streams: value.streams });
      else if (!hasConnectionModule(modules, value.connection)) {
        throw new InvalidOptionsError(`${source} declares streams for connection "${value.connection}", but there is no ${rootName(value.connection)}`);
      }
    }
  }
  if (declarations.length === 1) return options;
  return { ...options, streams: mergeStreamDeclarations(declarations) };
}

function hasConnectionModule(modules: ModulesContainer, name: string): boolean {
  for (const module of modules.values()) {
    if (module.providers.get(JETSTREAM_CONNECTION_NAME)?.instance === name) return true;
  }
  return false;
}

function rootName(connection: string): string {
  return isDefaultConnection(connection) ? 'JetStreamModule.forRoot' : `JetStreamModule.forRoot({ name: '${connection}' })`;
}
