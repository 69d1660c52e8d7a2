import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { die, EXIT } from './exit.js';
import { register as registerInfo } from './commands/info.js';
import { register as registerLs } from './commands/ls.js';
import { register as registerCat } from './commands/cat.js';
import { register as registerCp } from './commands/cp.js';
import { register as registerStat } from './commands/stat.js';
import { register as registerMount } from './commands/mount.js';
import { register as registerAttach } from './commands/attach.js';
import { register as registerServe } from './commands/serve.js';
import { register as registerUser } from './commands/user.js';

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

for (const register of [registerInfo, registerLs, registerCat, registerCp, registerStat, registerMount, registerAttach, registerServe, registerUser]) register(program);

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
