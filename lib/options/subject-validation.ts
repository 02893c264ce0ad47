import { InvalidSubjectError } from '../errors/jetstream-errors.js';

// Whitespace splits a subject in the protocol line; control characters are never valid either.
const FORBIDDEN = /[\s\u0000-\u001f\u007f]/;

/**
 * A publish subject must be concrete: a wildcard would be stored literally as a token and no
 * consumer filter would match it the way the caller meant.
 */
export function assertPublishSubject(subject: unknown): asserts subject is string {
  checkTokens(subject, false);
}

/** A handler subject may use `*` for one token and `>` as the last token. */
export function assertFilterSubject(subject: unknown): asserts subject is string {
  checkTokens(subject, true);
}

function checkTokens(subject: unknown, wildcardsAllowed: boolean): void {
  if (typeof subject !== 'string') {
    throw new InvalidSubjectError(String(subject), 'a subject must be a string');
  }
  if (subject.length === 0) {
    throw new InvalidSubjectError(subject, 'a subject must not be empty');
  }
  if (FORBIDDEN.test(subject)) {
    throw new InvalidSubjectError(subject, 'whitespace and control characters are not allowed');
  }
  const tokens = subject.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token.length === 0) {
      throw new InvalidSubjectError(subject, 'empty tokens (leading, trailing or double dots) are not allowed');
    }
    const hasWildcard = token.includes('*') || token.includes('>');
    if (!hasWildcard) continue;
    if (!wildcardsAllowed) {
      throw new InvalidSubjectError(subject, 'wildcards (* and >) cannot be published to');
    }
    if (token !== '*' && token !== '>') {
      throw new InvalidSubjectError(subject, `wildcards must stand alone as a token, found "${token}"`);
    }
    if (token === '>' && i !== tokens.length - 1) {
      throw new InvalidSubjectError(subject, '">" may only be the last token');
    }
  }
}

/**
 * True when every subject matched by `inner` is also matched by `outer`: the test for "this
 * stream captures everything this handler listens to".
 */
export function subjectCovers(outer: string, inner: string): boolean {
  const o = outer.split('.');
  const n = inner.split('.');
  for (let i = 0; i < o.length; i++) {
    const ot = o[i];
    if (ot === '>') return i < n.length;
    if (i >= n.length) return false;
    const nt = n[i];
    if (nt === '>') return false;
    if (ot === '*') continue;
    if (nt === '*' || nt !== ot) return false;
  }
  return o.length === n.length;
}

/** True when some concrete subject is matched by both patterns. */
export function subjectsOverlap(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const xt = x[i];
    const yt = y[i];
    if (xt === '>' || yt === '>') return xt !== undefined && yt !== undefined;
    if (xt === undefined || yt === undefined) return false;
    if (xt === '*' || yt === '*' || xt === yt) continue;
    return false;
  }
  return true;
}
