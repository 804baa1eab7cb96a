import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU seconds by component on this machine (Linux /proc), so the bench can say where a hybrid user's
 * time goes when the app, its peers, Azurite, the agent and the DC share the cores: `this` is the bench
 * process (the app, its Graph peer, and whatever else the bench runs in it), the others are classified
 * by command line (`agent` and `servicebus`: the agent and the Service Bus peer in processes of their own).
 */
export type Component = 'app+peers' | 'azurite' | 'agent' | 'servicebus' | 'graph' | 'samba' | 'other';

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

function classify(cmdline: string): Component {
  if (cmdline.includes('azurite')) return 'azurite';
  if (cmdline.includes('agent/main.ts')) return 'agent';
  if (cmdline.includes('peers/servicebus/main.ts')) return 'servicebus';
  if (cmdline.includes('peers/identity-graph/main.ts')) return 'graph';
  if (cmdline.startsWith('samba') || cmdline.includes('/samba ') || cmdline.includes('sbin/samba'))
    return 'samba';
  return 'other';
}

export function cpuSnapshot(): Map<string, { component: Component; seconds: number }> {
  const out = new Map<string, { component: Component; seconds: number }>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const seconds = (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
      const component =
        Number(pid) === process.pid
          ? 'app+peers'
          : classify(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '));
      out.set(pid, { component, seconds });
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return out;
}

/** CPU seconds each component used between two snapshots (processes that started meanwhile count whole). */
export function cpuBetween(
  before: ReturnType<typeof cpuSnapshot>,
  after: ReturnType<typeof cpuSnapshot>,
): Record<Component, number> {
  const used: Record<Component, number> = {
    'app+peers': 0,
    azurite: 0,
    agent: 0,
    servicebus: 0,
    graph: 0,
    samba: 0,
    other: 0,
  };
  for (const [pid, now] of after) used[now.component] += now.seconds - (before.get(pid)?.seconds ?? 0);
  return used;
}
