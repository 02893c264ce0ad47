import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// Jest runs specs without --expose-gc, so `global.gc` is undefined there and a heap figure would
// count garbage. The flag can still be set at run time: a context created after it has `gc`.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Bytes this process still holds after a full collection: the JS heap plus the ArrayBuffers
 * outside it, where the NATS client keeps message bytes it has read but not yet handed out.
 */
export function retainedBytes(): number {
  // ArrayBuffers a collection finds dead are freed by a concurrent sweeper; the next full
  // collection waits for it, so the second call is what makes the figure exclude them.
  gc();
  gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}
