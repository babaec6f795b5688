/**
 * The shell program a step runs, the same for process and image steps: each command echoed as
 * `+ command` (Woodpecker's convention, so that the log says what ran) and then run, under
 * `sh -e`, so that the first command that fails ends the step with its exit status.
 */
export function stepScript(commands: readonly string[]): string {
  return commands.map((command) => `printf '+ %s\\n' ${shellQuote(command)}\n${command}`).join('\n') + '\n';
}

/**
 * The argv that runs a script: `/bin/sh -e -c <script>`, behind a first shell that only sends
 * stderr into stdout and then execs it, so that the step writes both to one pipe and its log keeps
 * their order exactly (two pipes read apart cannot).
 */
export function stepArgv(script: string): string[] {
  return ['/bin/sh', '-c', 'exec "$@" 2>&1', 'sh', '/bin/sh', '-e', '-c', script];
}

/** `text` as one word for a POSIX shell: single quotes, each `'` as `'\''`. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
