import { dirname, isAbsolute, resolve } from 'node:path';
import type { OpenContext } from '../open.js';
import type { ByteSource } from '../types.js';

/**
 * Open a parent/backing image named inside a container. Relative names are
 * relative to the directory of the image that names them, as qemu and
 * Hyper-V do. The opened image is itself unwrapped (a qcow2 backing file is
 * usually another qcow2), with loop and depth checks done by openImage.
 */
export async function openBackingFile(
  context: OpenContext,
  imagePath: string,
  name: string,
  format?: string,
): Promise<ByteSource> {
  const path = isAbsolute(name) ? name : resolve(dirname(imagePath), name);
  const opened = await context.openBacking(path, format);
  return opened.source;
}
