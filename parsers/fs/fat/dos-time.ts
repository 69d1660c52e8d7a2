/**
 * DOS date/time fields, shared by FAT and exFAT.
 *
 * date: bits 0-4 day (1-31), 5-8 month (1-12), 9-15 years since 1980.
 * time: bits 0-4 seconds/2, 5-10 minutes, 11-15 hours.
 *
 * FAT stores local time with no zone. We cannot know the zone of the machine
 * that wrote it, so FAT times are taken as UTC (what Linux does with the
 * default tz=UTC mount option, and what mtools writes under TZ=UTC). exFAT adds
 * a UTC offset field; the caller passes it when it is valid.
 */

const NS_PER_MS = 1_000_000n;

/**
 * Nanoseconds since the Unix epoch, or null when the date is unset or
 * impossible (day or month 0, month > 12): creation and access fields are
 * often left zero.
 *
 * `extraCentiseconds` is FAT's CrtTimeTenth / exFAT's 10msIncrement (0-199:
 * it also carries the odd second the 2-second field cannot hold).
 * `utcOffsetMinutes` is how far the stored local time is ahead of UTC.
 */
export function dosTimestampNs(date: number, time: number, extraCentiseconds = 0, utcOffsetMinutes = 0): bigint | null {
  const day = date & 0x1f;
  const month = (date >> 5) & 0x0f;
  const year = 1980 + (date >> 9);
  if (day === 0 || month === 0 || month > 12) return null;
  const seconds = (time & 0x1f) * 2;
  const minutes = (time >> 5) & 0x3f;
  const hours = time >> 11;
  if (hours > 23 || minutes > 59 || seconds > 59) return null;
  const centis = extraCentiseconds <= 199 ? extraCentiseconds : 0;
  const ms = Date.UTC(year, month - 1, day, hours, minutes, seconds) + centis * 10 - utcOffsetMinutes * 60_000;
  return BigInt(ms) * NS_PER_MS;
}

/** The DOS epoch (1980-01-01 00:00 UTC): what an unset modification time reads as. */
export const DOS_EPOCH_NS = BigInt(Date.UTC(1980, 0, 1)) * NS_PER_MS;
