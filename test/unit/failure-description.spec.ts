import { BadRequestException, HttpException, UnprocessableEntityException } from '@nestjs/common';
import { describeFailure, failureMessage, failureName } from '../../lib/errors/failure-description.js';
import { FailurePolicy } from '../../lib/delivery/failure-policy.js';
import { resolveHandlerOptions } from '../../lib/discovery/resolve-handler-options.js';

describe('failure description', () => {
  it('puts a pipe rejection’s field messages first, not "Bad Request Exception"', () => {
    const rejected = new BadRequestException({ statusCode: 400, message: ['id must be a string', 'qty must be an integer number'], error: 'Bad Request' });
    expect(failureMessage(rejected)).toBe('id must be a string; qty must be an integer number');
    expect(describeFailure(rejected)).toBe('BadRequestException: id must be a string; qty must be an integer number');
    expect(failureMessage(new BadRequestException('one reason'))).toBe('one reason');
    expect(failureMessage(new HttpException({ message: [] }, 400))).toBe('Http Exception');
    expect(failureMessage(new Error('plain'))).toBe('plain');
    expect(describeFailure({ code: 7 })).toBe('non-Error thrown: {"code":7}');
    expect(failureName('x')).toBe('string');
  });

  it('gives a 422 from a ValidationPipe the reason of an invalid payload, without retry', () => {
    const policy = new FailurePolicy(resolveHandlerOptions('H.h', {}, {}));
    expect(policy.decide(new UnprocessableEntityException(['id must be a string']), 1)).toEqual({ action: 'dead-letter', reason: 'invalid-payload' });
    expect(policy.decide(new BadRequestException(['id must be a string']), 1)).toEqual({ action: 'dead-letter', reason: 'invalid-payload' });
  });
});
