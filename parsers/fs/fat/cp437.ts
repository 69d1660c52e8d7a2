/**
 * OEM code page 437, the code page of short (8.3) names written by DOS and by
 * US/Western Windows. Bytes below 0x80 are ASCII; the upper half maps here.
 * (Other OEM code pages exist, but nothing on disk says which one was used;
 * 437 is what the FAT specification and most readers assume.)
 */
const UPPER_HALF =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐' +
  '└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

export function decodeCp437(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b < 0x80 ? String.fromCharCode(b) : UPPER_HALF[b - 0x80];
  return out;
}
