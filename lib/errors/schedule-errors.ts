import { JetStreamModuleError } from './jetstream-errors.js';

/** The server refused a schedule: a cron or interval it cannot parse, or a target it cannot publish to. */
export class ScheduleRejectedError extends JetStreamModuleError {
  constructor(
    readonly schedule: string,
    readonly code: number | undefined,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`Schedule "${schedule}" was rejected${code ? ` (code ${code})` : ''}: ${reason}`, options);
  }
}
