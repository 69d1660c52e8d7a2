import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { die, EXIT } from './exit.js';
const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command();
program
  .name('loopless')
  .description('Read files, partitions and whole disks out of disk images: no root, no loop devices, no offset arithmetic.')
  .version(version)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .addHelpText(
    'after',
    `
Paths inside an image start with the volume: / lists the volumes, /p2/etc/passwd is a file
on the second partition (p1-p4 primary, p5+ logical, GPT entry N is pN; "fs" when the
image has no partition table).

Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 corrupt image, 5 unsupported,
6 destination exists, 7 not a directory / is a directory, 8 verification failed.`,
  );

/**
 * Commands load on demand: `loopless cat` must not pay for express, FUSE or
 * the zip library at start-up (measured: loading every command module took
 * ~0.3 s of a 3-byte `cat`). Help and unknown commands load them all.
 */
type CommandModule = { register(program: Command): void };
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  info: () => import('./commands/info.js'),
  ls: () => import('./commands/ls.js'),
  cat: () => import('./commands/cat.js'),
  cp: () => import('./commands/cp.js'),
  stat: () => import('./commands/stat.js'),
  mount: () => import('./commands/mount.js'),
  umount: () => import('./commands/mount.js'),
  attach: () => import('./commands/attach.js'),
  detach: () => import('./commands/attach.js'),
  serve: () => import('./commands/serve.js'),
  user: () => import('./commands/user.js'),
  restore: () => import('./commands/restore.js'),
  bmap: () => import('./commands/bmap.js'),
};

const requested = process.argv[2];
const registered = new Set<CommandModule>();
const loaders = requested && Object.hasOwn(COMMANDS, requested) ? [COMMANDS[requested]] : Object.values(COMMANDS);
for (const load of loaders) {
  const mod = await load();
  if (!registered.has(mod)) {
    registered.add(mod);
    mod.register(program);
  }
}

// Every command inherits the same exit behaviour.
for (const cmd of program.commands) cmd.exitOverride();

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  // A closed pipe (`loopless cat ... | head`) ends us quietly, as it does cat.
  if (e.code === 'EPIPE') process.exit(141);
  die(e);
});

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') process.exit(EXIT.ok);
    process.exit(EXIT.usage);
  }
  if ((e as NodeJS.ErrnoException).code === 'EPIPE') process.exit(141);
  die(e);
}
