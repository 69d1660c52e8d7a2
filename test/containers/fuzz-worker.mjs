// Runs inside a worker thread (with tsx loaded) so a hang can be cut off with
// terminate(). Opens a mutated container from memory through every registered
// format, reads from it within bounds, and reports every error that is not a
// typed LooplessError as a crash.
import { parentPort, workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

const { MemorySource, allContainerFormats, LooplessError, NotFoundError } = await tsImport('./fuzz-entry.ts', import.meta.url);

const READ_LIMIT = 4 * 1024 * 1024;

function classify(e, where, crashes) {
  if (e instanceof LooplessError) return;
  crashes.push(`${where}: ${e && e.stack ? e.stack.split('\n').slice(0, 5).join(' | ') : String(e)}`);
}

async function unwrap(source, context) {
  for (let depth = 0; depth < 4; depth++) {
    const head = Buffer.alloc(Math.min(4096, source.size));
    await source.read(head, 0, head.length, 0);
    let matched;
    for (const f of allContainerFormats) {
      if (await f.detect(head, source)) {
        matched = f;
        break;
      }
    }
    if (!matched) return { source, depth };
    source = await matched.open(source, '/nonexistent/fuzzed-image', context);
  }
  return { source, depth: 4 };
}

parentPort.on('message', async ({ bytes, seed }) => {
  const crashes = [];
  let opened = false;
  const context = {
    cacheDir: workerData.cacheDir,
    backingChain: [],
    openBacking: async (path) => {
      throw new NotFoundError(path, 'no backing files while fuzzing');
    },
  };
  let source;
  try {
    ({ source } = await unwrap(new MemorySource(new Uint8Array(bytes), 'fuzzed container'), context));
    opened = true;
    const size = source.size;
    if (!Number.isSafeInteger(size) || size < 0) crashes.push(`bad size ${size}`);
    const buf = Buffer.alloc(256 * 1024);
    for (let pos = 0; pos < Math.min(size, READ_LIMIT); pos += buf.length) {
      try {
        const n = await source.read(buf, 0, Math.min(buf.length, size - pos), pos);
        if (n !== Math.min(buf.length, size - pos)) crashes.push(`short read ${n} at ${pos}`);
      } catch (e) {
        classify(e, `read at ${pos}`, crashes);
        break;
      }
    }
    // A few reads spread over the whole (possibly huge, claimed) size.
    let a = seed >>> 0;
    for (let i = 0; i < 16 && size > 0; i++) {
      a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
      const pos = Math.floor((a / 2 ** 32) * size);
      try {
        await source.read(buf, 0, Math.min(4096, size - pos), pos);
      } catch (e) {
        classify(e, `read at ${pos}`, crashes);
      }
    }
    try {
      if (source.allocatedRanges) await source.allocatedRanges();
    } catch (e) {
      classify(e, 'allocatedRanges', crashes);
    }
  } catch (e) {
    classify(e, 'open', crashes);
  } finally {
    try {
      await source?.close();
    } catch (e) {
      classify(e, 'close', crashes);
    }
  }
  parentPort.postMessage({ crashes, opened });
});
parentPort.postMessage({ ready: true });
