/**
 * The rule for every name CI keeps and puts in URLs, file names and logs: job names, step names
 * and executor labels. A letter or digit first (so a name is never `.`, `..` or an option such as
 * `-x`), then letters, digits, `_`, `.` and `-`, 100 characters at most.
 */
export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,99}$/;

export const NAME_RULE = 'a letter or digit, then up to 99 letters, digits, `_`, `.` or `-`';

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

/**
 * An environment variable name that a shell can read back (`$NAME`): POSIX's portable form.
 * Names CI sets itself (`CI`, `CI_*`) are refused separately: see ci-variables.ts.
 */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Whether the text holds an ASCII control character (NUL to US, DEL); `alsoSpace` counts the space too. */
export function hasControlCharacter(text: string, alsoSpace = false): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || (alsoSpace && c === 0x20)) return true;
  }
  return false;
}
