import type { Statement } from './database-adapter.js';
import { inlineParameters } from './inline-parameters.js';

/**
 * Statements joined into one text for the simple-query protocol (one round trip), their
 * parameters inlined; undefined when one of them cannot be inlined (see `inlineParameters`).
 */
export function inlineScript(statements: Statement | readonly Statement[]): { readonly text: string; readonly count: number } | undefined {
  const list: readonly Statement[] = isStatementList(statements) ? statements : [statements];
  const parts: string[] = [];
  for (const { sql, params } of list) {
    const text = inlineParameters(sql, params);
    if (text === undefined) return undefined;
    parts.push(text);
  }
  return { text: parts.join('; '), count: list.length };
}

function isStatementList(value: Statement | readonly Statement[]): value is readonly Statement[] {
  return Array.isArray(value);
}
