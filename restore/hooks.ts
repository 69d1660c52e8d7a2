import type { ByteRange } from './ranges.js';

/**
 * Fault injection for the test suite only: a test preloads a module (node
 * --import) that sets these to damage the target between the write and the
 * read-back, proving the verification catches it. Unset in normal runs.
 */
export const testHooks: {
  /** After one piece was written (not yet synced). */
  afterWrite?: (targetPath: string, range: ByteRange) => Promise<void> | void;
  /** After a batch was synced, right before it is read back. */
  beforeVerify?: (targetPath: string, ranges: ByteRange[]) => Promise<void> | void;
} = {};
