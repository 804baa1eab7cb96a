import { randomUUID } from 'node:crypto';
import { FaultInjector, faultKinds, type FaultFigures, type FaultKind } from './faults.js';
import {
  commerce,
  deadLetters,
  directories,
  finalStates,
  isolation,
  operationStates,
  heldForAPerson,
  requestsFinal,
  unfinishedDecisions,
  type Invariant,
} from './invariants.js';
import { mulberry32 } from './prng.js';
import { act, advanceOnboarding, setUpWorkload } from './scenario.js';
import { startWorld, type World } from './world.js';

/**
 * One chaos run: the workload of three providers against every peer while faults from the seeded
 * schedule are injected, then a drain (timers run until every request is final, bounded), then the
 * invariants. Everything it found is in the result, with the seed to replay it.
 */
export interface ChaosOptions {
  seed: number;
  /** Stop injecting once this many faults took effect (or at maxDurationInMs). */
  faults: number;
  maxDurationInMs: number;
  /** Pause between two faults. */
  faultIntervalInMs: number;
  /** Actions in flight at once (each draws from its own seeded stream). */
  actionConcurrency: number;
  drainTimeoutInMs: number;
  kinds?: readonly FaultKind[];
  /** At most one outage or restart (SB, agent, DC, Azurite) per this many milliseconds. */
  slowFaultSpacingInMs?: number;
  log?: (line: string) => void;
}

/** A secrets scan over the run's logs and stored rows (test/support/secrets-scan.ts, when present). */
export type SecretsScan = (input: {
  logLines: string[];
  storageConnectionString: string;
  secrets: string[];
}) => Promise<{ where: string; secretIndex: number }[]>;

export interface ChaosResult {
  seed: number;
  replay: string;
  durationInMs: number;
  faults: FaultFigures;
  requests: {
    sent: number;
    retriedAttempts: number;
    operations: number;
    refused: Record<string, number>;
    /** The slowest answer the driver waited for (a hang shows here), and answers slower than 10 s. */
    maxLatencyInMs: number;
    slowerThan10s: number;
    slowExamples: string[];
  };
  /** When each outage/restart started and how long it took. */
  timeline: string[];
  drain: { inMs: number; quiet: boolean };
  invariants: Invariant[];
  violations: string[];
  timerErrors: number;
  timerLastError?: string;
  /** How many times each timer ran, and its slowest run. */
  timerRuns: Record<string, { runs: number; maxInMs: number }>;
  /** For the secrets scan (the lead wires scanForSecrets at merge; see runSecretsScan). */
  logLines: string[];
  secrets: string[];
  storageConnectionString: string;
  secretsFindings?: { where: string; secretIndex: number }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function replayCommand(seed: number, faults: number): string {
  return `npm run chaos -- --seed ${seed} --faults ${faults}`;
}

/** The timers a deployment runs on schedules, run here on a short beat so the run converges fast. */
async function runTimers(
  world: World,
  beat: number,
  errors: { count: number; last?: string },
  runs: Record<string, { runs: number; maxInMs: number }>,
): Promise<void> {
  const names = ['operation-sweep'];
  if (beat % 2 === 0) names.push('autoscale-just-in-time', 'commerce-sweep');
  if (beat % 4 === 0) names.push('licence-sweep', 'onboarding-drift');
  for (const name of names) {
    const started = Date.now();
    try {
      await world.host.runTimer(name);
      const r = (runs[name] ??= { runs: 0, maxInMs: 0 });
      r.runs += 1;
      r.maxInMs = Math.max(r.maxInMs, Date.now() - started);
    } catch (error) {
      errors.count += 1;
      errors.last = `${name}: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
}

export async function runChaos(options: ChaosOptions, scan?: SecretsScan): Promise<ChaosResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const replay = replayCommand(options.seed, options.faults);
  log(`chaos: seed ${options.seed} (replay: ${replay})`);
  const started = Date.now();
  const root = mulberry32(options.seed);
  const runId = `${options.seed.toString(36)}${randomUUID().slice(0, 4)}`;
  const world = await startWorld({ runId });
  try {
    const work = await setUpWorkload(world, runId);
    log(`chaos: world up in ${Date.now() - started} ms; injecting ${options.faults} faults`);
    const injector = new FaultInjector(
      world,
      mulberry32(root.int(0, 2 ** 31)),
      options.kinds ?? faultKinds,
      options.slowFaultSpacingInMs,
    );

    let acting = true;
    let timing = true;
    const timerErrors = { count: 0 } as { count: number; last?: string };
    const timerRuns: Record<string, { runs: number; maxInMs: number }> = {};
    const actionErrors: string[] = [];
    const actors = Array.from({ length: options.actionConcurrency }, async (_, i) => {
      const random = mulberry32(root.int(0, 2 ** 31) + i);
      while (acting) {
        try {
          await act(world, work, random);
        } catch (error) {
          actionErrors.push(error instanceof Error ? error.message : String(error));
        }
        await sleep(random.int(20, 250));
      }
    });
    const timers = (async () => {
      for (let beat = 0; timing; beat++) {
        await runTimers(world, beat, timerErrors, timerRuns);
        await sleep(500);
      }
    })();

    const faultDeadline = started + options.maxDurationInMs;
    let injectedSoFar = 0;
    let armedSoFar = 0;
    while (injectedSoFar < options.faults && Date.now() < faultDeadline) {
      const kind = injector.next();
      try {
        await injector.inject(kind);
      } catch (error) {
        actionErrors.push(`inject ${kind}: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (++armedSoFar % 5 === 0) injectedSoFar = await injector.total();
      if (armedSoFar % 50 === 0)
        log(`chaos: ${injectedSoFar} faults took effect, ${work.operations.length} operations so far`);
      await sleep(options.faultIntervalInMs);
    }
    acting = false;
    await Promise.all(actors);
    // Restarts finish before the drain; faults still armed at the peers stay armed through it (a drain
    // meets them like any traffic) and are counted, then removed, once it is over.
    await injector.quiesce();
    world.startAgent();
    log(`chaos: ${await injector.total()} faults took effect; timers ${JSON.stringify(timerRuns)}; draining`);

    // Drain: the timers run until every operation is final and the onboarding job completed.
    const drainStarted = Date.now();
    let quiet = false;
    let onboarding = 'notStarted';
    const finished = new Set<string>();
    while (Date.now() - drainStarted < options.drainTimeoutInMs) {
      onboarding = await advanceOnboarding(world, work).catch(() => onboarding);
      // Final states stay final: only the open ones are read again.
      const states = await operationStates(world, work, (id) => !finished.has(id));
      for (const s of states) if (finalStates.includes(s.state)) finished.add(s.op.operationId);
      const openStates = states.filter((s) => !finalStates.includes(s.state));
      let open = openStates.length;
      // Creates left waiting for a new subscription only a person may buy are done waiting, not open.
      if (open > 0 && openStates.every((s) => s.state === 'needsLicence' && s.op.kind === 'create')) {
        const explained = await heldForAPerson(world, work);
        const byCustomer = new Map<string, number>();
        for (const s of openStates)
          byCustomer.set(s.op.actor.customerId, (byCustomer.get(s.op.actor.customerId) ?? 0) + 1);
        if ([...byCustomer].every(([customer, n]) => n <= (explained.get(customer) ?? 0))) open = 0;
      }
      // Purchases a fault left unfinished are resent by the timers: the ledger settles once they land.
      const decisions = open === 0 ? await unfinishedDecisions(world, work).catch(() => 1) : 0;
      if (
        open === 0 &&
        decisions === 0 &&
        (onboarding === 'completed' || onboarding === 'notStarted' || onboarding.startsWith('failed'))
      ) {
        quiet = true;
        break;
      }
      if ((Date.now() - drainStarted) % 10_000 < 1000) {
        const open: Record<string, number> = {};
        for (const st of states)
          if (!finalStates.includes(st.state)) open[st.state] = (open[st.state] ?? 0) + 1;
        log(
          `chaos: draining, open ${JSON.stringify(open)}, unfinished decisions ${decisions}, onboarding ${onboarding}`,
        );
      }
      await sleep(1500);
    }
    timing = false;
    await timers;
    const drainInMs = Date.now() - drainStarted;
    const faults = await injector.settle();
    log(`chaos: drained in ${drainInMs} ms (${quiet ? 'quiet' : 'NOT quiet'}); checking invariants`);

    const checkStarted = Date.now();
    const allStates = await operationStates(world, work);
    const final = requestsFinal(work, allStates, onboarding, await heldForAPerson(world, work));
    // Users whose own operations did not all succeed are judged by the failure figures, not placement.
    const failedUsers = new Set(
      allStates.filter((s) => s.state !== 'succeeded').map((s) => `${s.op.actor.customerId}/${s.op.userId}`),
    );
    const invariants = [
      final,
      await directories(world, work, failedUsers),
      await commerce(world, work),
      await deadLetters(world),
      await isolation(world, work),
    ];
    log(`chaos: invariants checked in ${Date.now() - checkStarted} ms`);
    const violations = invariants.flatMap((i) => i.violations.map((v) => `${i.name}: ${v}`));
    actionErrors.push(...injector.laneErrors.map((e) => `fault lane ${e}`));
    if (actionErrors.length > 0) violations.push(...actionErrors.slice(0, 20).map((e) => `driver: ${e}`));
    const refused: Record<string, number> = {};
    for (const r of work.refused) {
      // Grouped by what was refused and why, not by which user or operation (ids would make each unique).
      const why = r.detail
        .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '…')
        .replace(/\buser \S+/g, 'user …');
      const key = `${r.action.split(' ').pop() ?? ''} ${r.status} ${r.code}: ${why.slice(0, 120)}`;
      refused[key] = (refused[key] ?? 0) + 1;
    }
    const result: ChaosResult = {
      seed: options.seed,
      replay,
      durationInMs: Date.now() - started,
      faults,
      requests: {
        sent: work.requests,
        retriedAttempts: work.retriedRequests,
        operations: work.operations.length,
        refused,
        maxLatencyInMs: work.maxLatencyInMs,
        slowerThan10s: work.slowRequests,
        slowExamples: work.slowExamples,
      },
      drain: { inMs: drainInMs, quiet },
      invariants,
      violations,
      timerErrors: timerErrors.count,
      ...(timerErrors.last === undefined ? {} : { timerLastError: timerErrors.last }),
      timerRuns,
      timeline: injector.timeline,
      logLines: world.logLines,
      secrets: [...world.secrets, ...work.passwords, ...Object.values(work.keys)],
      storageConnectionString: world.storageConnectionString,
    };
    if (scan !== undefined) {
      result.secretsFindings = await scan({
        logLines: result.logLines,
        storageConnectionString: result.storageConnectionString,
        secrets: result.secrets,
      });
      for (const f of result.secretsFindings) violations.push(`secret #${f.secretIndex} found in ${f.where}`);
    }
    return result;
  } finally {
    const stopping = Date.now();
    await world.stop();
    log(`chaos: world stopped in ${Date.now() - stopping} ms`);
  }
}

/** The figures for humans and `.local/chaos.json` (without the captured lines and secrets). */
export function figures(result: ChaosResult): Record<string, unknown> {
  const { logLines, secrets, storageConnectionString, ...rest } = result;
  void storageConnectionString;
  return { ...rest, logLines: logLines.length, secrets: secrets.length };
}
