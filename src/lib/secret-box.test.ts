import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadSecretKey, openSecretBox, SECRET_KEY_BYTES, SecretBox, SecretKeyRefused, SecretUnreadable } from './secret-box.ts';

describe('SecretBox', () => {
  const box = SecretBox.random();

  it('gives back what it sealed, for any text, under the same context', () => {
    for (const text of ['', 's3cret', 'ünïcödé ✓ 🔑', 'x'.repeat(100_000), 'a:b:c:d', '\u0000\n']) {
      const sealed = box.seal(text, 'ci job app secret TOKEN');
      assert.match(sealed, /^v1:[A-Za-z0-9+/]+=*:[A-Za-z0-9+/]+=*:[A-Za-z0-9+/]*=*$/);
      assert.equal(box.open(sealed, 'ci job app secret TOKEN'), text);
    }
  });

  it('seals the same text differently each time (a random IV per value), and never in clear', () => {
    const a = box.seal('hunter2');
    const b = box.seal('hunter2');
    assert.notEqual(a, b);
    assert.notEqual(a.split(':')[1], b.split(':')[1]);
    assert.doesNotMatch(a, /hunter2/);
    assert.doesNotMatch(Buffer.from(a.split(':')[3]!, 'base64').toString('latin1'), /hunter2/);
  });

  it('refuses a value with any one bit flipped, in the IV, the tag or the ciphertext', () => {
    const sealed = box.seal('the launch codes', 'ctx');
    const [version, ...parts] = sealed.split(':');
    for (let part = 0; part < 3; part++) {
      const bytes = Buffer.from(parts[part]!, 'base64');
      for (let bit = 0; bit < bytes.length * 8; bit += 7) {
        const flipped = Buffer.from(bytes);
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        const copy = [...parts];
        copy[part] = flipped.toString('base64');
        assert.throws(() => box.open([version, ...copy].join(':'), 'ctx'), SecretUnreadable, `part ${part}, bit ${bit}`);
      }
    }
  });

  it('refuses a value sealed with another key, or for another context', () => {
    const sealed = box.seal('s3cret', 'ci job a secret X');
    assert.throws(() => SecretBox.random().open(sealed, 'ci job a secret X'), /sealed with another key or for another use, or it was altered/);
    assert.throws(() => box.open(sealed, 'ci job b secret X'), SecretUnreadable);
    assert.throws(() => box.open(sealed), SecretUnreadable);
  });

  it('refuses what is not a sealed value at all', () => {
    for (const junk of ['', 's3cret', 'v2:a:b:c', 'v1:a:b', 'v1:!!!!:AAAA:AAAA', `v1:${Buffer.alloc(11).toString('base64')}:${Buffer.alloc(16).toString('base64')}:`]) {
      assert.throws(() => box.open(junk), SecretUnreadable, junk);
    }
    const sealed = box.seal('x');
    assert.throws(() => box.open(sealed.slice(0, -4)), SecretUnreadable);
    assert.throws(() => box.open(`${sealed}AAAA`), SecretUnreadable);
  });

  it('takes only 32-byte keys', () => {
    assert.throws(() => new SecretBox(Buffer.alloc(16)), RangeError);
    assert.throws(() => new SecretBox(Buffer.alloc(33)), RangeError);
  });
});

describe('loadSecretKey and openSecretBox', () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-secret-key-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('creates <data-dir>/secret.key on first start: 32 random bytes, mode 0600 whatever the umask; the same key afterwards', () => {
    const data = mkdtempSync(join(dir, 'data-'));
    const umask = process.umask(0o000);
    let first: SecretBox;
    try {
      first = openSecretBox({ dataDir: data });
    } finally {
      process.umask(umask);
    }
    const st = statSync(join(data, 'secret.key'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.size, SECRET_KEY_BYTES);
    const again = openSecretBox({ dataDir: data });
    assert.equal(again.open(first.seal('kept', 'c'), 'c'), 'kept');
    assert.notDeepEqual(readFileSync(join(data, 'secret.key')), Buffer.alloc(SECRET_KEY_BYTES));
  });

  it('refuses a key file readable or writable by others, saying how to fix it', () => {
    for (const mode of [0o644, 0o640, 0o604, 0o660, 0o602]) {
      const file = join(dir, `loose-${mode.toString(8)}`);
      writeFileSync(file, Buffer.alloc(SECRET_KEY_BYTES, 1));
      chmodSync(file, mode);
      assert.throws(() => loadSecretKey(file, { create: false }), (e: unknown) => e instanceof SecretKeyRefused && e.message.includes(`mode 0${mode.toString(8)}`) && e.message.includes(`chmod 600 ${file}`));
    }
    const strict = join(dir, 'strict');
    writeFileSync(strict, Buffer.alloc(SECRET_KEY_BYTES, 2));
    chmodSync(strict, 0o400);
    assert.deepEqual(loadSecretKey(strict, { create: false }), Buffer.alloc(SECRET_KEY_BYTES, 2));
  });

  it('refuses a key file of the wrong size, a directory, and a missing file the operator named', () => {
    for (const size of [0, 31, 33, 44]) {
      const file = join(dir, `size-${size}`);
      writeFileSync(file, Buffer.alloc(size, 3), { mode: 0o600 });
      assert.throws(() => loadSecretKey(file, { create: true }), new RegExp(`holds ${size} bytes, not 32`));
    }
    assert.throws(() => loadSecretKey(dir, { create: false }), /is not a regular file|readable or writable by others/);
    assert.throws(() => openSecretBox({ dataDir: dir, keyFile: join(dir, 'missing.key') }), /missing\.key does not exist: make one with `head -c 32 \/dev\/urandom/);
  });

  it('uses the file the operator names (--secret-key-file), following a symbolic link to it', () => {
    const file = join(dir, 'operator.key');
    writeFileSync(file, Buffer.alloc(SECRET_KEY_BYTES, 7), { mode: 0o600 });
    const link = join(dir, 'operator-link.key');
    symlinkSync(file, link);
    const a = openSecretBox({ dataDir: join(dir, 'unused'), keyFile: file });
    const b = openSecretBox({ dataDir: join(dir, 'unused'), keyFile: link });
    assert.equal(b.open(a.seal('same key', 'c'), 'c'), 'same key');
    assert.throws(() => statSync(join(dir, 'unused', 'secret.key')), /ENOENT/);
  });
});
