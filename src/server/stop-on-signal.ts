/**
 * Stops a long-running process on Ctrl-C or SIGTERM: runs `close` once (a second signal while it
 * runs does nothing more), then exits 0, or 1 when closing failed.
 */
export function stopOnSignal(close: () => Promise<void>, what: string, log: (line: string) => void): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping ${what}`);
    close().then(
      () => process.exit(0),
      (e: unknown) => {
        log(`error while stopping: ${(e as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
