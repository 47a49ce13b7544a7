// Stable names for kernel objects (chains, sets, maps): a hash of an identity, so a name survives restarts and new
// versions and does not depend on ordering. Pure.
import { hash } from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 (no padding) of the first bytes of a SHA-256 of `text`, `length` characters long (≤ 51). */
export function nameHash(text: string, length: number): string {
  const digest = hash('sha256', text, 'buffer');
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of digest) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < length) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= 0xff;
    if (out.length >= length) break;
  }
  return out;
}
