// The part of compress-commons (archiver's zip engine) the zip route uses; the package ships no types.
declare module 'compress-commons' {
  import { Transform, type Readable } from 'node:stream';

  export class ZipArchiveEntry {
    constructor(name: string);
    setTime(date: Date, forceLocalTime?: boolean): void;
    setUnixMode(mode: number): void;
    setMethod(method: number): void;
    setExtra(extra: Buffer): void;
    getName(): string;
    isDirectory(): boolean;
  }

  export interface ZipOutputOptions {
    zlib?: import('node:zlib').ZlibOptions;
    forceZip64?: boolean;
    forceLocalTime?: boolean;
  }

  export class ZipArchiveOutputStream extends Transform {
    constructor(options?: ZipOutputOptions);
    entry(entry: ZipArchiveEntry, source: Readable | Buffer | null, callback: (error: Error | null) => void): this;
    finish(): void;
  }
}
