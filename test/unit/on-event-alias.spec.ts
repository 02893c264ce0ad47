import 'reflect-metadata';
import * as api from '../../lib/index.js';

describe('@OnJetStreamEvent', () => {
  it('is @OnEvent under a name no other package exports (IDE auto-import cannot pick @nestjs/event-emitter\'s)', () => {
    expect(api.OnJetStreamEvent).toBe(api.OnEvent);
    class Handler {
      @api.OnJetStreamEvent('orders.created', { durable: 'alias' })
      handle(): void {}
    }
    const metadata = Reflect.getMetadata('nestjs-jetstream:on-event', Handler.prototype.handle);
    expect(metadata).toEqual([{ subject: 'orders.created', options: { durable: 'alias' } }]);
  });
});
