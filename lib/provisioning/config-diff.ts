/**
 * Fields of `desired` whose values differ from `actual`. Only fields the caller set are
 * compared: the server fills in defaults for the rest, and those are not drift.
 */
export function diffConfig(desired: object, actual: object, ignore: readonly string[] = []): string[] {
  const a = actual as Record<string, unknown>;
  const changed: string[] = [];
  for (const [key, value] of Object.entries(desired)) {
    if (value === undefined || ignore.includes(key)) continue;
    if (!sameValue(value, a[key])) changed.push(key);
  }
  return changed;
}

// The server leaves zero values (false, 0, '', empty lists) out of the config it returns.
function isZero(v: unknown): boolean {
  return v === undefined || v === null || v === false || v === 0 || v === '' || (Array.isArray(v) && v.length === 0);
}

function sameValue(x: unknown, y: unknown): boolean {
  if (isZero(x) && isZero(y)) return true;
  if (Array.isArray(x) && Array.isArray(y)) {
    // Subject lists and similar are sets to the server: order is not a change.
    if (x.length !== y.length) return false;
    const ys = y.map(stableKey);
    return x.map(stableKey).every((k) => ys.includes(k));
  }
  if (x instanceof Date || y instanceof Date) {
    return new Date(x as string).getTime() === new Date(y as string).getTime();
  }
  if (x && y && typeof x === 'object' && typeof y === 'object') {
    return diffConfig(x, y).length === 0;
  }
  // Durations arrive as numbers or bigints depending on the client path.
  if ((typeof x === 'bigint' || typeof x === 'number') && (typeof y === 'bigint' || typeof y === 'number')) {
    return BigInt(x) === BigInt(y);
  }
  return x === y;
}

function stableKey(v: unknown): string {
  return typeof v === 'object' ? JSON.stringify(v, (_k, val) => (typeof val === 'bigint' ? val.toString() : val)) : String(v);
}
