// What the documentation's snippets take from their surroundings: an injected service, the
// application, a payload in hand. Declared here once so every ```ts block of README.md and
// docs/ compiles against the library as it is (scripts/check-docs.mjs).
import type { INestApplication } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import type { DeadLetterService, JetStreamPublisher } from 'nestjs-jetstream';

declare global {
  interface DocOrder {
    orderId: string;
    id: string;
    totalCents: number;
  }
  const publisher: JetStreamPublisher;
  const deadLetters: DeadLetterService;
  const client: ClientProxy;
  const app: INestApplication;
  const order: DocOrder;
  const orders: DocOrder[];
  const seq: number;
  const servers: string;
  // Your own modules, as a snippet imports them.
  class AppModule {}
  class BillingModule {}
}
export {};
