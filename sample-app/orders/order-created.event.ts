import { Type } from 'class-transformer';
import { IsInt, IsISO8601, IsNotEmpty, IsString, Matches, Min, ValidateNested, ArrayNotEmpty } from 'class-validator';

export class OrderLine {
  @IsString()
  @IsNotEmpty()
  sku!: string;

  @IsInt()
  @Min(1)
  quantity!: number;

  /** Price of one unit in cents. */
  @IsInt()
  @Min(0)
  unitPriceCents!: number;
}

/**
 * Payload of `orders.created`. Handlers that declare this class as their first parameter get
 * an instance of it, validated by class-validator; a payload that fails validation is
 * terminated (never redelivered) and logged by the module.
 */
export class OrderCreatedEvent {
  @IsString()
  @Matches(/^ord-[a-z0-9-]+$/)
  orderId!: string;

  @IsString()
  @IsNotEmpty()
  customerId!: string;

  @ValidateNested({ each: true })
  @ArrayNotEmpty()
  @Type(() => OrderLine)
  lines!: OrderLine[];

  @IsInt()
  @Min(0)
  totalCents!: number;

  @IsISO8601()
  placedAt!: string;
}

/** Payload of `orders.cancelled`. Only the audit log listens to it in this sample. */
export interface OrderCancelledEvent {
  orderId: string;
  reason: string;
  cancelledAt: string;
}
