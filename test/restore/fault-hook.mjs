// Preloaded into the CLI by the restore tests (node --import) to damage the
// target between writing and reading back, through restore/hooks.ts.
//   LOOPLESS_TEST_FAULT=corrupt-always  flip a byte in the first range of every batch before it is read back
//   LOOPLESS_TEST_FAULT=corrupt-once    the same, for the first batch only (the retry must repair it)
//   LOOPLESS_TEST_FAULT=slow            sleep LOOPLESS_TEST_DELAY_MS after every piece (to interrupt a restore)
//   LOOPLESS_TEST_FAULT_FILE=path       damage this file instead of the target (a loop device's backing file)
import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { testHooks } from '../../dist/restore/hooks.js';

const mode = process.env.LOOPLESS_TEST_FAULT ?? '';
let corrupted = 0;

if (mode === 'slow') {
  const ms = Number(process.env.LOOPLESS_TEST_DELAY_MS ?? '20');
  testHooks.afterWrite = () => new Promise((resolve) => setTimeout(resolve, ms));
}

if (mode === 'corrupt-always' || mode === 'corrupt-once') {
  testHooks.beforeVerify = (target, ranges) => {
    if (mode === 'corrupt-once' && corrupted > 0) return;
    const range = ranges.find((r) => r.length >= 4096);
    if (!range) return;
    const file = process.env.LOOPLESS_TEST_FAULT_FILE || target;
    const at = range.start + Math.floor(range.length / 2);
    const fd = openSync(file, 'r+');
    try {
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0] ^= 0xff;
      writeSync(fd, b, 0, 1, at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    corrupted++;
    process.stderr.write(`fault-hook: flipped byte ${at} of ${file}\n`);
  };
}
