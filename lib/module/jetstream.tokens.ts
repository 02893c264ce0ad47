/** Module options after defaults and validation; inject it to read what the module runs with. */
export const JETSTREAM_RESOLVED_OPTIONS = Symbol('JETSTREAM_RESOLVED_OPTIONS');
