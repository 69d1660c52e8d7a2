// seek-bzip ships no types; these cover the two calls we use.
declare module 'seek-bzip' {
  const Bunzip: {
    /** Decode the block starting at bit `pos` of `input` (which must begin with a "BZh" stream header). */
    decodeBlock(input: Uint8Array, pos: number, output?: number | Buffer): Buffer;
  };
  export default Bunzip;
}
