export { Disk, type InfoJson, type VolumeJson } from './disk.js';
export { type Entry, type LsJson, toLsJson, toStatJson, isoTime, nsToDate } from './entry.js';
export { walk, type WalkOptions } from './walk.js';
export { splitPath, joinPath, normalizePath, childPath, baseName } from './path.js';
