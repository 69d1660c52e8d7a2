import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { createApp } from './app.js';
import { AuditLog } from './audit.js';
import { Auth } from './auth/auth.js';
import { defaultUsersFile, UsersSource } from './auth/users-file.js';
import { ImageCatalog } from './catalog.js';
import { DiskPool } from './disk-pool.js';
import { displayUrl, isLoopback } from './host.js';
import { ImagesApi } from './routes/images.js';
import { defaultWebRoot } from './web-root.js';

export interface ServeOptions {
  /** Folders holding the images (searched up to 4 levels deep). */
  folders: string[];
  /** Default 127.0.0.1. Any non-loopback address requires logins. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default: $LOOPLESS_USERS, else ~/.config/loopless/users.json. */
  usersFile?: string;
  /** Ask for a login even on the loopback address. */
  requireLogin?: boolean;
  /** Trust X-Forwarded-For/-Proto from this proxy (express "trust proxy" value; true = any). */
  trustProxy?: boolean | string;
  /** Audit trail: a file to append to, or a stream. Default standard output. */
  audit?: string | Writable;
  /** How many images to keep open at once. Default 8. */
  openImages?: number;
  /** Folder of the built page (default dist/web of the package). */
  webRoot?: string;
  /** Serve HTTPS directly with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
}

export interface RunningServer {
  /** URL to open from this machine. */
  url: string;
  host: string;
  port: number;
  loginRequired: boolean;
  usersFile: string;
  folders: string[];
  pool: DiskPool;
  close(): Promise<void>;
}

/** Thrown for a configuration that must not start (no users on a public address ...). */
export class ServeConfigError extends Error {}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const usersFile = options.usersFile ?? defaultUsersFile();
  const loginRequired = Boolean(options.requireLogin) || !isLoopback(host);
  const catalog = await ImageCatalog.open(options.folders).catch((e: Error) => {
    throw new ServeConfigError(e.message);
  });
  const users = new UsersSource(usersFile);
  if (loginRequired && Object.keys((await users.current()).users).length === 0) {
    const why = isLoopback(host) ? '--require-login' : `listening on ${host} (not only this machine)`;
    throw new ServeConfigError(`${why} needs at least one user: run \`loopless user add NAME\` (users file: ${usersFile}; another file with --users FILE or LOOPLESS_USERS)`);
  }
  const audit = new AuditLog(options.audit ?? process.stdout);
  const pool = new DiskPool(options.openImages ?? 8);
  const auth = new Auth({ loginRequired, users, audit });
  const images = new ImagesApi({ catalog, pool, audit });
  const app = createApp({ auth, images, webRoot: options.webRoot ?? defaultWebRoot(), trustProxy: options.trustProxy ?? false, host });

  const server: Server = options.tls
    ? createHttpsServer({ cert: readFileSync(options.tls.cert), key: readFileSync(options.tls.key) }, app)
    : createHttpServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new ServeConfigError(`port ${options.port ?? 8080} on ${host} is already in use (choose another with --port)`));
      else if (e.code === 'EADDRNOTAVAIL') reject(new ServeConfigError(`${host} is not an address of this machine`));
      else if (e.code === 'EACCES') reject(new ServeConfigError(`not allowed to listen on port ${options.port ?? 8080} (ports below 1024 need privileges)`));
      else reject(e);
    });
    server.listen(options.port ?? 8080, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: displayUrl(host, port, Boolean(options.tls)),
    host,
    port,
    loginRequired,
    usersFile,
    folders: catalog.folderPaths,
    pool,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await pool.close();
      await audit.close();
    },
  };
}
