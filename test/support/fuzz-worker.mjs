// Runs inside a worker thread so a hang can be cut off with terminate() even in
// a synchronous loop. Walks a (mutated) filesystem image through the public
// FileSystem interface and reports every error that is not one of our typed
// errors as a crash. Imports the compiled parsers from dist/ (npm test builds first).
import { parentPort } from 'node:worker_threads';

const dist = new URL('../../dist/parsers/', import.meta.url);
const { MemorySource } = await import(new URL('source/memory.js', dist).href);
const { detectFileSystem } = await import(new URL('fs/index.js', dist).href);
const { LooplessError } = await import(new URL('errors.js', dist).href);

const LIMITS = { entries: 20000, bytesPerFile: 4 * 1024 * 1024, depth: 64 };

function classify(e, where, crashes) {
  if (e instanceof LooplessError) return;
  crashes.push(`${where}: ${e && e.stack ? e.stack.split('\n').slice(0, 4).join(' | ') : String(e)}`);
}

async function walk(fs, crashes) {
  let entries = 0;
  const buf = Buffer.alloc(1024 * 1024);
  const visit = async (node, path, depth) => {
    if (depth > LIMITS.depth || entries > LIMITS.entries) return;
    let list;
    try { list = await fs.readdir(node, { all: true }); } catch (e) { return classify(e, `readdir ${path}`, crashes); }
    for (const { name, node: child } of list) {
      if (++entries > LIMITS.entries) return;
      const p = `${path}/${name}`;
      try {
        if (child.stat.type === 'dir') { await visit(child, p, depth + 1); continue; }
        if (child.stat.type === 'symlink') { await fs.readlink(child); continue; }
        if (child.stat.type === 'file') {
          let pos = 0;
          while (pos < Math.min(child.stat.size, LIMITS.bytesPerFile)) {
            const n = await fs.read(child, buf, 0, buf.length, pos);
            if (n <= 0) break;
            pos += n;
          }
          try { await fs.lookup(node, name); } catch (e) { classify(e, `lookup ${p}`, crashes); }
        }
      } catch (e) { classify(e, p, crashes); }
    }
  };
  await visit(await fs.root(), '', 0);
}

parentPort.on('message', async ({ bytes }) => {
  const crashes = [];
  let opened = false;
  try {
    const source = new MemorySource(new Uint8Array(bytes), 'fuzzed volume');
    const det = await detectFileSystem(source);
    if (det.driver) {
      const fs = await det.driver.open(source);
      opened = true;
      try { fs.info(); await fs.allocatedRanges(); } catch (e) { classify(e, 'info/allocatedRanges', crashes); }
      await walk(fs, crashes);
      await fs.close();
    }
  } catch (e) {
    classify(e, 'open', crashes);
  }
  parentPort.postMessage({ crashes, opened });
});
parentPort.postMessage({ ready: true });
