import { InvalidSubjectError } from '../../lib/index.js';
import {
  assertFilterSubject,
  assertPublishSubject,
  subjectCovers,
  subjectsOverlap,
} from '../../lib/options/subject-validation.js';

describe('subject validation', () => {
  it.each(['orders.created', 'a', 'a.b.c', 'orders-1.x_y', 'ünïcode.ok'])('accepts publish subject %p', (s) => {
    expect(() => assertPublishSubject(s)).not.toThrow();
  });

  it.each([
    ['', /must not be empty/],
    ['a b', /whitespace/],
    ['a\tb', /whitespace/],
    ['a\nb', /whitespace/],
    ['a..b', /empty tokens/],
    ['.a', /empty tokens/],
    ['a.', /empty tokens/],
    ['a.*', /wildcards/],
    ['a.>', /wildcards/],
    ['a.b*', /wildcards/],
  ])('rejects publish subject %p', (s, reason) => {
    expect(() => assertPublishSubject(s)).toThrow(InvalidSubjectError);
    expect(() => assertPublishSubject(s)).toThrow(reason);
  });

  it('rejects non-strings with a clear error', () => {
    expect(() => assertPublishSubject(undefined)).toThrow(/must be a string/);
    expect(() => assertPublishSubject(42)).toThrow(InvalidSubjectError);
  });

  it.each(['a.*', 'a.>', '*', '>', 'a.*.c', '*.*.>'])('accepts filter subject %p', (s) => {
    expect(() => assertFilterSubject(s)).not.toThrow();
  });

  it.each([
    ['a.>.c', /last token/],
    ['a.b*', /stand alone/],
    ['a.>x', /stand alone/],
    ['a..*', /empty tokens/],
  ])('rejects filter subject %p', (s, reason) => {
    expect(() => assertFilterSubject(s)).toThrow(reason);
  });

  it.each([
    ['orders.>', 'orders.created', true],
    ['orders.>', 'orders.*', true],
    ['orders.>', 'orders.a.>', true],
    ['orders.>', 'orders', false],
    ['orders.*', 'orders.created', true],
    ['orders.*', 'orders.a.b', false],
    ['orders.*', 'orders.>', false],
    ['orders.created', 'orders.*', false],
    ['>', 'anything.at.all', true],
    ['*.created', 'orders.created', true],
    ['orders.created', 'orders.created', true],
  ])('%p covers %p: %p', (outer, inner, expected) => {
    expect(subjectCovers(outer, inner)).toBe(expected);
  });

  it.each([
    ['orders.created', 'orders.*', true],
    ['orders.a', 'orders.b', false],
    ['orders.>', 'orders', false],
    ['orders.*.x', 'orders.y.*', true],
    ['a.b', 'a.b.c', false],
  ])('%p overlaps %p: %p', (a, b, expected) => {
    expect(subjectsOverlap(a, b)).toBe(expected);
    expect(subjectsOverlap(b, a)).toBe(expected);
  });
});
