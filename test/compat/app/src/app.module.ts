import { Module } from '@nestjs/common';
import { JetStreamModule } from 'nestjs-jetstream';
import { OrdersController, OrdersGuard, OrdersHandler, OrdersInterceptor } from './orders';

@Module({
  // NATS_URL is read when the module connects, so a test may set it after importing this file.
  imports: [JetStreamModule.forRoot({ streams: [{ name: 'SHOP', subjects: ['shop.>'] }] })],
  controllers: [OrdersController],
  providers: [OrdersHandler, OrdersGuard, OrdersInterceptor],
})
export class AppModule {}
