/**
 * The schema a message was written against, stamped by a typed publisher from its contract:
 * `Jetstream-Schema: orders.OrderCreated` and `Jetstream-Schema-Version: 2`. A handler that
 * declares a version reads them to upcast older messages and to refuse newer ones.
 */
export const SCHEMA_NAME_HEADER = 'Jetstream-Schema';
export const SCHEMA_VERSION_HEADER = 'Jetstream-Schema-Version';
