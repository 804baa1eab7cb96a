import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/**
 * Starts a peer as a child process that dies with us: it gets SIGTERM when this process exits or is
 * signalled, so no orphan keeps holding a port (Azurite does when its parent dies).
 */
const children = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = (): void => {
    for (const child of children) child.kill('SIGTERM');
  };
  process.once('exit', killAll);
}

export function spawnPeer(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  hookExit();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export async function stopChild(
  child: ChildProcess,
  graceInMs = 3000,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceInMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
