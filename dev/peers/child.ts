import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';

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

/**
 * Runs one of our peers' CLIs (`dev/peers/<name>/main.ts`) as a child that dies with us, and answers
 * the one JSON line it prints once listening, with a `stop` that ends it (SIGTERM) and waits.
 */
export async function spawnAnnouncingPeer(
  mainScript: string,
  args: string[],
): Promise<{ announced: unknown; stop(): Promise<void> }> {
  const child = spawnPeer(process.execPath, ['--import', 'tsx', mainScript, ...args], {
    cwd: process.cwd(),
    env: process.env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stdout = child.stdout;
  if (stdout === null) throw new Error(`${mainScript}: no stdout`);
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: stdout });
    lines.once('line', (line) => {
      lines.close();
      resolve(line);
    });
    child.once('exit', (code) =>
      reject(new Error(`${mainScript} exited (${String(code)}) before listening`)),
    );
  });
  stdout.resume();
  return {
    announced: JSON.parse(first) as unknown,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
