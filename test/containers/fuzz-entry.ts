// One entry for the fuzz worker: loaded through a single tsImport so the error
// classes it checks against are the ones the parsers throw.
export { MemorySource } from '../../parsers/source/memory.js';
export { allContainerFormats } from '../../parsers/source/containers/index.js';
export { LooplessError, NotFoundError } from '../../parsers/errors.js';
