import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { IsInt, IsString } from 'class-validator';
import { createAsyncApiDocument, OnKvChange, type EventContext } from '../../lib/index.js';
import { asyncApiSchemaErrors } from '../support/asyncapi-validator.js';

class Cart {
  @IsString() owner!: string;
  @IsInt() items!: number;
}

@Injectable()
class CartProjection {
  @OnKvChange('carts', 'cart.*', { durable: 'cart-projection' })
  onCart(_cart: Cart, _ctx: EventContext): void {}
}

@Module({ providers: [CartProjection] })
class CartModule {}

describe('@OnKvChange in the AsyncAPI document', () => {
  it('is a receive operation on the channel $KV.<bucket>.<keyPattern> (wildcards as parameters), with the value class as its message', async () => {
    const doc = await createAsyncApiDocument(CartModule, { title: 'Carts', version: '1' });
    expect(asyncApiSchemaErrors(doc)).toEqual([]);
    const channels = Object.values(doc.channels) as Array<{ address: string }>;
    expect(channels.map((c) => c.address)).toEqual(['$KV.carts.cart.{token4}']);
    const operations = Object.values(doc.operations) as Array<{ action: string; 'x-jetstream'?: Record<string, unknown> }>;
    expect(operations).toHaveLength(1);
    expect(operations[0].action).toBe('receive');
    expect(JSON.stringify(doc)).toContain('KV_carts');
    expect(JSON.stringify(doc.components)).toContain('"owner"');
  });
});
