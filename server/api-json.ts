/**
 * The JSON the web API answers with, where it adds to the vfs shapes in
 * parsers/vfs/json.ts. Types only, importing nothing but type-only modules,
 * so that the browser code (web/) can import them too without pulling in Node.
 */
import type { EntryType } from '../parsers/fs/entry-type.js';
import type { StatJson } from '../parsers/vfs/json.js';

/** One row of GET /api/images. */
export interface ImageSummary {
  id: string;
  /** Size of the disk inside (for containers: the virtual disk). */
  size: number;
  table: string | null;
  /** Bytes of the image file. */
  fileSize: number;
  modified: string;
  /** Why the image cannot be opened, when it cannot. */
  error: string | null;
  code: string | null;
}

/** GET /api/images/ID/stat/PATH: `stat --json` plus what the details panel needs. */
export interface StatAnswer extends StatJson {
  name: string;
  /** The MIME type a download will carry (files only). */
  mime?: string;
  /** For a symlink: where inside the image it leads, and what is there (or why nothing is). */
  targetPath?: string;
  targetType?: EntryType | null;
  targetError?: string | null;
}

/** GET /api/session. */
export interface SessionJson {
  loginRequired: boolean;
  user: string | null;
}
