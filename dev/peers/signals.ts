/**
 * Runs `stop` once on SIGINT or SIGTERM and exits (0 when it stopped cleanly), so every CLI of ours
 * leaves no child or port behind.
 */
export function stopOnSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}
