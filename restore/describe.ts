/**
 * The paragraph shown before overwriting a drive or a file: what it is
 * (model, size) and what it holds now (partitions from /sys and from its
 * own partition table), so the user can tell the new drive from the old one.
 */
import { humanSize } from '../cli/format.js';
import { oneLine } from '../parsers/errors.js';
import { Disk } from '../parsers/vfs/index.js';
import type { Target } from './target.js';

export async function describeTarget(target: Target): Promise<string> {
  const lines: string[] = [];
  const dev = target.device;
  if (dev) {
    const model = [dev.vendor, dev.model].filter(Boolean).join(' ') || 'unknown model';
    const flags = [dev.removable ? 'removable' : null, dev.isPartition ? 'a partition' : null, dev.backingFile ? `loop device on ${dev.backingFile}` : null].filter(Boolean);
    lines.push(`${target.path} (/dev/${dev.name}): ${model}, ${humanSize(dev.size)} (${dev.size} bytes)${flags.length ? `, ${flags.join(', ')}` : ''}`);
    if (dev.partitions.length) {
      lines.push(`  kernel partitions: ${dev.partitions.map((p) => `${p.name} ${humanSize(p.size)}`).join(', ')}`);
    }
  } else {
    lines.push(`${target.path}: existing file, ${humanSize(target.size)} (${target.size} bytes)`);
  }
  lines.push(...(await currentContents(target.path)));
  return lines.join('\n');
}

async function currentContents(path: string): Promise<string[]> {
  let disk: Disk;
  try {
    disk = await Disk.open(path);
  } catch (e) {
    return [`  current contents: unreadable (${oneLine(e)})`];
  }
  try {
    const info = await disk.info();
    const blank = info.table === 'none' && !info.volumes.some((v) => v.fs);
    if (blank) return ['  current contents: no partition table or filesystem recognized'];
    const out = [`  current partition table: ${info.table}, ${info.volumes.length} volume${info.volumes.length === 1 ? '' : 's'}`];
    for (const v of info.volumes) {
      const label = v.label ?? v.partitionLabel;
      out.push(`    ${v.name.padEnd(4)} ${humanSize(v.size).padStart(6)} at ${v.start}  ${v.fs ?? 'no filesystem'}${label ? ` "${label}"` : ''}`);
    }
    return out;
  } finally {
    await disk.close();
  }
}
