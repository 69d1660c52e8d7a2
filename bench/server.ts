import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { hasTool, heading, repoRoot, row, sh, tempDir } from './lib.js';

/**
 * Issue 6's targets for `loopless serve`: 50 concurrent downloads of a 100 MB
 * file from a loopback load generator (throughput and the server's peak RSS),
 * against a plain Node static file server sending the same bytes from a host
 * file; and listing a 10,000-entry folder through the API (target < 100 ms).
 * The server runs as its own process (the compiled CLI), so its memory is
 * measured apart from the load generator's.
 */
const MB = 1000 * 1000;
const FILE_SIZE = 100 * MB;
const CLIENTS = 50;
const ENTRIES = 10_000;

interface Server {
  child: ChildProcess;
  url: string;
}

function startProcess(args: string[], urlPattern: RegExp): Promise<Server> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = urlPattern.exec(out);
      if (m) resolve({ child, url: m[1].replace(/\/$/, '') });
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}) before printing its URL: ${out}`)));
  });
}

function stopProcess(s: Server): Promise<void> {
  return new Promise((resolve) => {
    s.child.removeAllListeners('exit');
    s.child.once('exit', () => resolve());
    s.child.kill('SIGTERM');
  });
}

/** Resident memory of a process in MB (VmRSS now, VmHWM = peak since start). */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

function download(url: string, hash: boolean): Promise<{ bytes: number; sha256: string | null }> {
  return new Promise((resolve, reject) => {
    get(url, (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        reject(new Error(`${url}: HTTP ${res.statusCode}`));
        res.resume();
        return;
      }
      const h = hash ? createHash('sha256') : null;
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        h?.update(chunk);
      });
      res.on('end', () => resolve({ bytes, sha256: h ? h.digest('hex') : null }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

interface LoadResult {
  seconds: number;
  mbPerSecond: number;
  peakRssMb: number;
  baseRssMb: number;
  sha256: string | null;
}

/** CLIENTS downloads at once; the server's RSS is sampled throughout (and VmHWM read at the end). */
async function load(server: Server, url: string): Promise<LoadResult> {
  await download(url, false); // warm-up: page cache and JIT
  const base = memory(server.child.pid!).rss;
  let sampledPeak = base;
  const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, memory(server.child.pid!).rss)), 50);
  const started = process.hrtime.bigint();
  const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => download(url, i === 0)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  const bytes = results.reduce((n, r) => n + r.bytes, 0);
  if (results.some((r) => r.bytes !== FILE_SIZE)) throw new Error(`a download was short: ${results.map((r) => r.bytes).join(',')}`);
  return { seconds, mbPerSecond: bytes / MB / seconds, peakRssMb: Math.max(sampledPeak, memory(server.child.pid!).peak), baseRssMb: base, sha256: results[0].sha256 };
}

async function timeRequest(url: string): Promise<{ ms: number; body: Buffer }> {
  const started = process.hrtime.bigint();
  const body = await new Promise<Buffer>((resolve, reject) => {
    get(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    }).on('error', reject);
  });
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, body };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The bench image: ext4 with a 100 MB file and a 10,000-entry folder (cached between runs). */
function buildImage(dir: string): { served: string; hostCopy: string } {
  const served = join(dir, 'served');
  const tree = join(dir, 'tree');
  const img = join(served, 'bench.img');
  const hostCopy = join(tree, 'big', 'file-100mb.bin');
  if (existsSync(img) && existsSync(hostCopy)) return { served, hostCopy };
  mkdirSync(join(tree, 'big'), { recursive: true });
  mkdirSync(join(tree, 'many'), { recursive: true });
  mkdirSync(served, { recursive: true });
  sh(`head -c ${FILE_SIZE} /dev/urandom > ${hostCopy}`);
  for (let i = 0; i < ENTRIES; i++) writeFileSync(join(tree, 'many', `file-${String(i).padStart(5, '0')}.txt`), `entry ${i}\n`);
  // Built under another name and renamed, so a failed build is never mistaken for a cached image.
  sh(`rm -f ${img}.tmp && truncate -s 200M ${img}.tmp && mkfs.ext4 -q -F -N ${ENTRIES + 2000} -L bench -d ${tree} ${img}.tmp && mv ${img}.tmp ${img}`);
  return { served, hostCopy };
}

/** A static file server with no image in between: the reference for throughput and memory. */
const STATIC_SERVER = `
const http = require('node:http'); const fs = require('node:fs');
const file = process.argv[1];
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': fs.statSync(file).size });
  fs.createReadStream(file, { highWaterMark: 1024 * 1024 }).pipe(res);
});
server.listen(0, '127.0.0.1', () => console.log('http://127.0.0.1:' + server.address().port + '/'));
process.on('SIGTERM', () => process.exit(0));
`;

export async function run(): Promise<void> {
  if (!hasTool('mkfs.ext4')) {
    heading('server: skipped (needs mkfs.ext4)');
    return;
  }
  const bin = join(repoRoot, 'bin', 'loopless.js');
  const cacheDir = join(process.env.BENCH_TMPDIR ?? '/tmp', 'loopless-bench-server');
  mkdirSync(cacheDir, { recursive: true });
  heading(`server: building the bench image (ext4, one ${FILE_SIZE / MB} MB file, a ${ENTRIES}-entry folder; cached in ${cacheDir})`);
  const { served, hostCopy } = buildImage(cacheDir);
  const expected = createHash('sha256').update(readFileSync(hostCopy)).digest('hex');
  const logs = tempDir('loopless-bench-server-');
  try {
    heading(`server: ${CLIENTS} concurrent downloads of a ${FILE_SIZE / MB} MB file over loopback (warm page cache)`);
    const ours = await startProcess([bin, 'serve', served, '--port', '0', '--audit-log', join(logs.dir, 'audit.log')], /(http:\/\/127\.0\.0\.1:\d+\/)/);
    let ourLoad: LoadResult;
    try {
      ourLoad = await load(ours, `${ours.url}/api/images/bench.img/cat/fs/big/file-100mb.bin`);
    } finally {
      await stopProcess(ours);
    }
    if (ourLoad.sha256 !== expected) throw new Error('downloaded bytes differ from the file put into the image');
    const reference = await startProcess(['-e', STATIC_SERVER, hostCopy], /(http:\/\/127\.0\.0\.1:\d+\/)/);
    let refLoad: LoadResult;
    try {
      refLoad = await load(reference, `${reference.url}/`);
    } finally {
      await stopProcess(reference);
    }
    const describe = (r: LoadResult) => `${r.seconds.toFixed(2)} s, ${r.mbPerSecond.toFixed(0)} MB/s, peak RSS ${r.peakRssMb.toFixed(0)} MB (idle ${r.baseRssMb.toFixed(0)} MB)`;
    row('loopless serve (image → ext4 → HTTP)', describe(ourLoad));
    row('plain Node static server (host file)', describe(refLoad));
    row('throughput ratio', `${(ourLoad.mbPerSecond / refLoad.mbPerSecond).toFixed(2)}x the static server (sha256 of a download verified)`);

    heading(`server: listing the ${ENTRIES}-entry folder through GET /api/images/ID/ls (target < 100 ms)`);
    const fresh = await startProcess([bin, 'serve', served, '--port', '0', '--audit-log', join(logs.dir, 'audit2.log')], /(http:\/\/127\.0\.0\.1:\d+\/)/);
    try {
      const url = `${fresh.url}/api/images/bench.img/ls/fs/many`;
      const first = await timeRequest(url);
      const count = (JSON.parse(first.body.toString()) as unknown[]).length;
      if (count !== ENTRIES) throw new Error(`listing returned ${count} entries, not ${ENTRIES}`);
      const uncached = await timeRequest(`${url}?all=1`); // a second listing of the same folder the cache has not seen
      const warm: number[] = [];
      for (let i = 0; i < 20; i++) warm.push((await timeRequest(url)).ms);
      row('first request (opens the image, reads the folder)', `${first.ms.toFixed(1)} ms, ${(first.body.length / 1e6).toFixed(2)} MB JSON`);
      row('folder read again, not from the listing cache', `${uncached.ms.toFixed(1)} ms`);
      row('repeated (listing cache), median of 20', `${median(warm).toFixed(1)} ms (max ${Math.max(...warm).toFixed(1)} ms)`);
    } finally {
      await stopProcess(fresh);
    }
  } finally {
    logs.cleanup();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run();
