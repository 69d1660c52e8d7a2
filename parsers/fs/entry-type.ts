/**
 * What a node is. In a module of its own, free of imports, so that the JSON
 * types the browser code shares (parsers/vfs/json.ts) can name it without
 * pulling in the Node types that parsers/fs/types.ts needs.
 */
export type EntryType = 'file' | 'dir' | 'symlink' | 'other';
