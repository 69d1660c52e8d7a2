import type { Command } from 'commander';
import { humanSize, table } from '../format.js';
import { withDisk } from '../disk.js';
import type { InfoJson } from '../../parsers/vfs/index.js';

export function register(program: Command): void {
  program
    .command('info')
    .description('show the partition table and the filesystem of every volume')
    .argument('<image>', 'disk image (raw dd image, or a partition/filesystem image)')
    .option('--json', 'print one JSON object (size, table, volumes) instead of a table')
    .action(async (image: string, opts: { json?: boolean }) => {
      const info = await withDisk(image, (disk) => disk.info(), { quiet: opts.json });
      process.stdout.write(opts.json ? JSON.stringify(info) + '\n' : renderInfo(image, info));
    });
}

export function renderInfo(image: string, info: InfoJson): string {
  const chain = [...info.chain, info.table === 'none' ? 'no partition table' : info.table].join(' → ');
  const head = `${image}: ${humanSize(info.size)} (${info.size} bytes), ${chain}${info.chain.length ? `, file ${humanSize(info.fileSize)}` : ''}\n`;
  const rows = [['NAME', 'START', 'SIZE', 'TYPE', 'FS', 'LABEL', 'UUID']];
  for (const v of info.volumes) {
    const type = v.typeName ? `${v.type === 'none' ? '' : shortType(v.type) + ' '}${v.typeName}` : v.type;
    const fs = v.fs ? (v.supported ? v.fs : `${v.fs} (unsupported)`) : v.error ? 'error' : '-';
    rows.push([v.name, String(v.start), humanSize(v.size), type, fs, v.label ?? v.partitionLabel ?? '-', v.uuid ?? '-']);
  }
  let out = head + table(rows, [false, true, true]) + '\n';
  for (const v of info.volumes) if (v.error) out += `${v.name}: ${v.error}\n`;
  return out;
}

function shortType(type: string): string {
  return type.length > 8 ? type.slice(0, 8) + '…' : type;
}
