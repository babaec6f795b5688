import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fstatSync, fsyncSync, linkSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SlipwayError } from '../core/errors.ts';

/**
 * Secrets at rest: AES-256-GCM (Node's crypto) with one key per installation, the key a file of
 * 32 random bytes. Parts seal what they must keep secret (CI's job secrets and webhook secrets)
 * before it reaches a database or a git mirror, and open it when they load it.
 *
 * Sealed text: `v1:<iv>:<tag>:<ciphertext>`, each base64 (standard alphabet, padded): a random
 * 12-byte IV per value (never reused with the key: 2^-32 odds of a collision after 2^32 values),
 * the 16-byte authentication tag, and the UTF-8 plaintext encrypted. The version comes first so
 * that a later format (another cipher, a key id for rotation) can be read beside this one.
 *
 * A context string (`ci job deploy secret TOKEN`) is bound to each value as GCM's additional
 * authenticated data: a sealed value opens only under the context it was sealed for, so a value
 * copied from one job's row into another's (or from one field into another) is refused like a
 * tampered one.
 *
 * Contract: `open` returns exactly what `seal` was given, for the same key and context, and throws
 * SecretUnreadable for anything else: another key, another context, any bit changed, a truncated
 * or malformed text. GCM cannot tell those apart, and the message says so.
 */

export const SECRET_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';
const CIPHER = 'aes-256-gcm';

/** A sealed value that cannot be opened (another key or context, or altered). */
export class SecretUnreadable extends SlipwayError {
  readonly code = 'SECRET_UNREADABLE';
  /** A sealed value given in a request that does not open with this server's key: the caller's to fix. */
  readonly status = 422;
}

/** The key file is missing, unreadable, of the wrong size, or readable by others. */
export class SecretKeyRefused extends SlipwayError {
  readonly code = 'SECRET_KEY_REFUSED';
  /** Raised at start, before any route: the part cannot keep secrets until the operator fixes the file. */
  readonly status = 503;
}

/** Seals and opens secrets with one key; see the module comment for the format and the contract. */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== SECRET_KEY_BYTES) throw new RangeError(`a secret key is ${SECRET_KEY_BYTES} bytes, not ${key.length}`);
    // A copy: the caller's buffer may be reused or zeroed.
    this.#key = Buffer.from(key);
  }

  /** A box with a fresh random key (tests; and what `loadSecretKey` writes on first start). */
  static random(): SecretBox {
    return new SecretBox(randomBytes(SECRET_KEY_BYTES));
  }

  seal(plaintext: string, context = ''): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(CIPHER, this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64'), cipher.getAuthTag().toString('base64'), ciphertext.toString('base64')].join(':');
  }

  open(sealed: string, context = ''): string {
    const parts = sealed.split(':');
    if (parts.length !== 4 || parts[0] !== VERSION) {
      throw new SecretUnreadable(`not a sealed secret (expected ${VERSION}:<iv>:<tag>:<ciphertext>)`);
    }
    const [iv, tag, ciphertext] = parts.slice(1).map(strictBase64);
    if (iv === undefined || tag === undefined || ciphertext === undefined || iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
      throw new SecretUnreadable(`not a sealed secret (a ${IV_BYTES}-byte IV and a ${TAG_BYTES}-byte tag, in base64)`);
    }
    const decipher = createDecipheriv(CIPHER, this.#key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretUnreadable('the sealed secret does not open: it was sealed with another key or for another use, or it was altered');
    }
  }
}

/** Base64 that decodes back to itself (Node's decoder skips junk silently; a sealed value is never junk). */
function strictBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

const MAKE_ONE = `head -c ${SECRET_KEY_BYTES} /dev/urandom > FILE && chmod 600 FILE`;

/**
 * The key in `path`. With `create`, a missing file is made: 32 random bytes, mode 0600 whatever
 * the umask, written whole before it appears, never over a file another process made meanwhile.
 * Refused (SecretKeyRefused, saying what to do) when the file is not a regular file, is readable
 * or writable by group or others, or is not exactly 32 bytes; and, without `create`, when it is
 * missing (an operator who names a key file means that one). A symbolic link is followed (a
 * Kubernetes secret volume is made of them) and its target is checked.
 */
export function loadSecretKey(path: string, options: { create: boolean }): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && options.create) return createKey(path);
    if (code === 'ENOENT') throw new SecretKeyRefused(`the secret key file ${path} does not exist: make one with \`${MAKE_ONE}\``);
    throw new SecretKeyRefused(`the secret key file ${path} cannot be read: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SecretKeyRefused(`the secret key file ${path} is not a regular file`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new SecretKeyRefused(`the secret key file ${path} is readable or writable by others (mode ${mode.toString(8).padStart(4, '0')}): \`chmod 600 ${path}\` (anyone who reads it can read every secret)`);
    }
    if (st.size !== SECRET_KEY_BYTES) {
      throw new SecretKeyRefused(`the secret key file ${path} holds ${st.size} bytes, not ${SECRET_KEY_BYTES}: it is not a Slipway key (make one with \`${MAKE_ONE}\`)`);
    }
    const key = Buffer.alloc(SECRET_KEY_BYTES);
    let read = 0;
    while (read < SECRET_KEY_BYTES) {
      const n = readSync(fd, key, read, SECRET_KEY_BYTES - read, read);
      if (n === 0) break;
      read += n;
    }
    if (read !== SECRET_KEY_BYTES) throw new SecretKeyRefused(`the secret key file ${path} changed while it was read`);
    return key;
  } finally {
    closeSync(fd);
  }
}

function createKey(path: string): Buffer {
  const key = randomBytes(SECRET_KEY_BYTES);
  // Written whole aside, then linked into place: a crash never leaves a short key behind, and a
  // key another process made meanwhile wins (link fails with EEXIST) and is read instead.
  const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    const fd = openSync(aside, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      // The mode of open() is cut by the umask (it never adds bits); fchmod makes it exactly 0600.
      fchmodSync(fd, 0o600);
      writeSync(fd, key);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(aside, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadSecretKey(path, { create: false });
      throw e;
    }
  } catch (e) {
    if (e instanceof SecretKeyRefused) throw e;
    throw new SecretKeyRefused(`the secret key file ${path} cannot be created: ${(e as Error).message}`);
  } finally {
    rmSync(aside, { force: true });
  }
  return key;
}

/**
 * The box of a part: the key in `keyFile` when the operator names one (`--secret-key-file`: it
 * must exist), else `<dataDir>/secret.key`, created on first start.
 */
export function openSecretBox(o: { dataDir: string; keyFile?: string | undefined }): SecretBox {
  const path = o.keyFile ?? join(o.dataDir, SECRET_KEY_FILE);
  return new SecretBox(loadSecretKey(path, { create: o.keyFile === undefined }));
}

/** The key's file name in a data dir. */
export const SECRET_KEY_FILE = 'secret.key';
