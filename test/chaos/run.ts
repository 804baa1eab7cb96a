import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scanForSecrets } from '../support/secrets-scan.js';
import { figures, runChaos } from './chaos.js';
import { faultKinds, type FaultKind } from './faults.js';
import { seedFrom } from './prng.js';

/**
 * `npm run chaos [-- --seed N] [--faults N] [--minutes M] [--kinds graph503,workerKilled]`: the long run (default 1,000 faults, at most
 * 15 minutes of injection), figures printed and written to `.local/chaos.json`; exit 1 on any violation.
 */
function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seed = seedFrom(process.argv, process.env);
const faults = Number(flag('faults') ?? process.env.CHAOS_FAULTS ?? 1000);
const minutes = Number(flag('minutes') ?? 15);
if (!Number.isInteger(faults) || faults < 1) throw new Error('--faults must be a positive integer');
const kindsFlag = flag('kinds');
const kinds = kindsFlag?.split(',').map((k) => {
  if (!(faultKinds as readonly string[]).includes(k))
    throw new Error(`unknown fault kind ${k}: ${faultKinds.join(', ')}`);
  return k as FaultKind;
});

const result = await runChaos(
  {
    seed,
    faults,
    maxDurationInMs: minutes * 60_000,
    faultIntervalInMs: 250,
    actionConcurrency: 4,
    drainTimeoutInMs: 240_000,
    ...(kinds === undefined ? {} : { kinds }),
  },
  scanForSecrets,
);
const out = figures(result);
mkdirSync(join(process.cwd(), '.local'), { recursive: true });
writeFileSync(join(process.cwd(), '.local', 'chaos.json'), `${JSON.stringify(out, null, 2)}\n`);
// Every captured line of the run (already scanned for secrets above), so a broken invariant can be traced.
writeFileSync(join(process.cwd(), '.local', 'chaos-log.txt'), `${result.logLines.join('\n')}\n`);
for (const invariant of result.invariants)
  console.log(
    `${invariant.violations.length === 0 ? 'HOLDS' : 'BROKEN'}  ${invariant.name}  ${JSON.stringify(invariant.figures)}`,
  );
console.log(`faults: ${result.faults.total} took effect ${JSON.stringify(result.faults.injected)}`);
console.log(`requests: ${JSON.stringify(result.requests)}; drain ${result.drain.inMs} ms`);
if (result.violations.length > 0) {
  for (const v of result.violations.slice(0, 50)) console.log(`VIOLATION ${v}`);
  console.log(`chaos: ${result.violations.length} violation(s); seed ${seed}; replay: ${result.replay}`);
  process.exit(1);
}
console.log(`chaos: every invariant holds (seed ${seed}); figures in .local/chaos.json`);
process.exit(0);
