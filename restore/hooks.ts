import type { ByteRange } from './ranges.js';

/**
 * Fault injection for the test suite only: a test preloads a module (node
 * --import) that sets these to damage the target between the write and the
 * read-back, proving the verification catches it. Unset in normal runs.
 */
export interface RestoreTestHooks {
  /** After one piece was written (not yet synced). */
  afterWrite?: (targetPath: string, range: ByteRange) => Promise<void> | void;
  /** After a batch was synced, right before it is read back. */
  beforeVerify?: (targetPath: string, ranges: ByteRange[]) => Promise<void> | void;
}

/**
 * Kept on globalThis under a registered symbol, not in module state: the CLI
 * runs from a bundle (cli/build.mjs) while the preloaded module imports
 * dist/restore/hooks.js, and both copies must see the same object.
 */
const KEY = Symbol.for('loopless.restore.testHooks');
const holder = globalThis as { [KEY]?: RestoreTestHooks };
export const testHooks: RestoreTestHooks = (holder[KEY] ??= {});
