import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { hostname } from 'node:os';
import { startServer, type ServeOptions } from '../../server/index.js';
import { die } from '../exit.js';

interface ServeFlags {
  port: number;
  host: string;
  users?: string;
  requireLogin?: boolean;
  trustProxy?: string | boolean;
  auditLog?: string;
  openImages: string;
  tlsCert?: string;
  tlsKey?: string;
}

function port(value: string): number {
  // commander calls this for --port and prints the message on failure
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('a port number 0-65535 (0 picks a free one)');
  return n;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('browse the images of one or more folders in a web browser, with a JSON API')
    .argument('[dir...]', 'folders holding disk images (default: the current folder)')
    .option('-p, --port <port>', 'port to listen on (0: any free port)', port, 8080)
    .option('--host <address>', 'address to listen on; anything but loopback requires users (loopless user add)', '127.0.0.1')
    .option('--users <file>', 'users file (default: $LOOPLESS_USERS, else ~/.config/loopless/users.json)')
    .option('--require-login', 'ask for a login even on the loopback address')
    .option('--trust-proxy [addresses]', 'believe X-Forwarded-For/-Proto from this reverse proxy (default when given: loopback)')
    .option('--audit-log <file>', 'append the audit trail (JSON lines) to this file instead of standard output')
    .option('--open-images <n>', 'how many images to keep open at once', '8')
    .option('--tls-cert <pem>', 'serve HTTPS with this certificate (with --tls-key)')
    .option('--tls-key <pem>', 'private key for --tls-cert')
    .addHelpText(
      'after',
      `
The page and the API (/api/images ...) are served by the same process; see the README.
By default only this machine can connect (127.0.0.1) and no login is asked. Listening on
any other address (--host 0.0.0.0) requires at least one user in the users file.`,
    )
    .action(async (dirs: string[], flags: ServeFlags, command: Command) => {
      if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) command.error('error: --tls-cert and --tls-key go together', { exitCode: 2 });
      const options: ServeOptions = {
        folders: dirs.length ? dirs : ['.'],
        host: flags.host,
        port: flags.port,
        usersFile: flags.users,
        requireLogin: flags.requireLogin,
        trustProxy: flags.trustProxy === true ? 'loopback' : (flags.trustProxy ?? false),
        audit: flags.auditLog,
        openImages: Math.max(1, Number(flags.openImages) || 8),
        tls: flags.tlsCert && flags.tlsKey ? { cert: flags.tlsCert, key: flags.tlsKey } : undefined,
      };
      let server;
      try {
        server = await startServer(options);
      } catch (e) {
        die(e);
      }
      const wildcard = server.host === '0.0.0.0' || server.host === '::';
      const lines = [
        `Loopless is serving disk images from ${server.folders.join(', ')}`,
        `  ${server.url}${wildcard ? `  (all addresses: e.g. ${server.url.replace('localhost', hostname())})` : ''}`,
        server.loginRequired ? `  login required; users in ${server.usersFile}` : '  no login (only this machine can connect)',
        `  audit log: ${flags.auditLog ?? 'standard output'}; stop with Ctrl+C`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
      const stop = () => {
        server.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
