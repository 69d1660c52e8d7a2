export { Disk } from './disk.js';
export { type Entry, toLsJson, toStatJson, isoTime, nsToDate } from './entry.js';
export type { InfoJson, LsJson, StatJson, VolumeJson } from './json.js';
export { walk, type WalkOptions } from './walk.js';
export { splitPath, joinPath, normalizePath, childPath, baseName } from './path.js';
