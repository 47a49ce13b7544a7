// Error numbers by name and back (Linux values, as Node knows them), for messages and error codes.
import { constants } from 'node:os';

const byNumber = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) if (!byNumber.has(value)) byNumber.set(value, name);

/** "ENOENT" for 2; "errno N" for a number Node does not know. */
export function errnoName(errno: number): string {
  return byNumber.get(errno) ?? `errno ${errno}`;
}

export const ERRNO = {
  ENOENT: constants.errno.ENOENT,
  ESRCH: constants.errno.ESRCH,
  EEXIST: constants.errno.EEXIST,
  EINVAL: constants.errno.EINVAL,
  EPERM: constants.errno.EPERM,
  EBUSY: constants.errno.EBUSY,
  ENOBUFS: constants.errno.ENOBUFS,
  EMSGSIZE: constants.errno.EMSGSIZE,
  EAGAIN: constants.errno.EAGAIN,
  EINTR: constants.errno.EINTR,
} as const;
