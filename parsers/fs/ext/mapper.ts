/**
 * Logical-to-physical block mapping of one inode's data, whatever scheme the
 * inode uses (extent tree or indirect blocks). Callers walk a file by asking
 * for the run that starts at a logical block; each answer covers as many
 * blocks as the on-disk structure describes in one piece, so contiguous data
 * becomes one large read.
 */
export type RunKind = 'data' | 'hole' | 'unwritten';

export interface BlockRun {
  kind: RunKind;
  /** First logical block of the run (the block asked for). */
  logical: number;
  /** First physical block; meaningful only for 'data' and 'unwritten'. */
  physical: number;
  /** Number of blocks, at least 1. */
  count: number;
}

export interface BlockMapper {
  map(logical: number): Promise<BlockRun>;
}

/** Logical block numbers are 32-bit in both schemes. */
export const MAX_LOGICAL_BLOCKS = 2 ** 32;
