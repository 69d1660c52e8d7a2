import type { ContainerFormat } from '../open.js';
import { bzip2Format } from './bzip2.js';
import { gzipFormat } from './gzip.js';
import { qcow2Format } from './qcow2.js';
import { vdiFormat } from './vdi.js';
import { vhdxFormat } from './vhdx.js';
import { xzFormat } from './xz.js';
import { zstdFormat } from './zstd.js';
import { vmdkDescriptorFormat, vmdkSparseFormat } from './vmdk.js';
import { vhdDynamicFormat, vhdFixedFormat } from './vhd.js';

/**
 * Every container format, probed in this order by openImage. Formats with a
 * magic at offset 0 come first; fixed VHD (a footer at the end) comes last,
 * since its only mark is at the end of what is otherwise a raw disk.
 */
export const allContainerFormats: ContainerFormat[] = [qcow2Format, vhdxFormat, vmdkSparseFormat, vmdkDescriptorFormat, vdiFormat, gzipFormat, xzFormat, zstdFormat, bzip2Format, vhdDynamicFormat, vhdFixedFormat];
