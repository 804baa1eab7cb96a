import { z } from 'zod';

/**
 * Every setting atria-m365 reads, in one schema, parsed once at start (environment variables in Azure,
 * `local.settings.json` Values / `.local/peers.json` locally). Names follow the Functions convention for
 * identity-based connections (`<Connection>__fullyQualifiedNamespace`, `__serviceUri`, `__credential`).
 * A missing or malformed setting fails fast with every bad name listed.
 */
const url = z.url({ protocol: /^https?$/ });
const httpsUrl = z.url({ protocol: /^https$/ });
const guid = z.guid();
const optionalText = z.string().trim().min(1).optional();
const positiveInt = z.coerce.number().int().positive();

export const settingsSchema = z.object({
  /** `local` serves the dev host with function keys; `azure` expects managed identity and Entra auth. */
  ATRIA_ENVIRONMENT: z.enum(['local', 'azure']).default('local'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /** Azure: traces, metrics and logs to Application Insights (shared/telemetry.ts). */
  APPLICATIONINSIGHTS_CONNECTION_STRING: optionalText,
  /** Locally: `console` prints finished spans; otherwise spans go to a registered provider only. */
  OTEL_TRACES_EXPORTER: z.enum(['none', 'console']).optional(),
  OTEL_METRICS_EXPORTER: z.enum(['none', 'console']).optional(),

  // Table storage: a connection string (Azurite) or an identity-based service URI (Azure).
  TableStorage: optionalText,
  TableStorage__tableServiceUri: url.optional(),
  TableStorage__clientId: guid.optional(),

  // Service Bus: the same two shapes; the Functions trigger binding reads the same names.
  ServiceBusConnection: optionalText,
  ServiceBusConnection__fullyQualifiedNamespace: optionalText,
  ServiceBusConnection__clientId: guid.optional(),

  // The partner's multi-tenant Entra app used for Graph (one credential per customer tenant).
  Graph__authorityHost: httpsUrl.default('https://login.microsoftonline.com'),
  Graph__baseUrl: httpsUrl.default('https://graph.microsoft.com/v1.0'),
  Graph__clientId: guid.optional(),
  Graph__clientSecret: optionalText,
  Graph__certificatePath: optionalText,
  /**
   * The partner tenant where the app is registered. With it, users we create carry our idempotency key
   * in a directory extension of the app (registered once; needs Application.ReadWrite.OwnedBy), so a
   * create whose answer was lost is recognised as ours — and a stranger's account never is.
   */
  Graph__homeTenantId: guid.optional(),
  /**
   * The client-side throttle budget (shared/adapters/graph/budget.ts): the share of Graph's documented
   * limits this instance may use (1 for one instance; 1/N for N instances, or rely on 429 feedback), how
   * long a request may wait for budget before the operation is re-scheduled instead, and — for local
   * runs whose Graph peer scales its windows — the same scale and window lengths as the peer.
   */
  Graph__budgetShare: z.coerce.number().positive().max(1).default(1),
  Graph__budgetMaxWaitInMs: z.coerce.number().int().min(0).default(2000),
  Graph__budgetScale: z.coerce.number().positive().max(1).default(1),
  Graph__budgetResourceUnitWindowInMs: positiveInt.default(10_000),
  Graph__budgetWriteWindowInMs: positiveInt.default(150_000),

  // Partner Center (1-Tier CSP); absent for providers that only buy through distributors.
  PartnerCenter__baseUrl: httpsUrl.default('https://api.partnercenter.microsoft.com'),
  PartnerCenter__tenantId: guid.optional(),
  PartnerCenter__clientId: guid.optional(),
  PartnerCenter__clientSecret: optionalText,
  /** The one provider whose Partner Center account the credentials above are (its licensing connector). */
  PartnerCenter__providerId: optionalText,
  /** How often, and from what delay, a slow order or 202 quantity change is read again within one call. */
  PartnerCenter__pollAttempts: positiveInt.default(8),
  PartnerCenter__pollBaseDelayInMs: positiveInt.default(1000),

  // A distributor's Partner API (2-Tier CSP, Pax8 shape); secret as a Key Vault reference in Azure.
  Distributor__name: z.string().trim().min(1).max(64).default('Pax8'),
  Distributor__baseUrl: httpsUrl.default('https://api.pax8.com'),
  Distributor__tokenUrl: httpsUrl.optional(),
  Distributor__clientId: optionalText,
  Distributor__clientSecret: optionalText,
  /** The one provider whose distributor account this is; other providers get purchase requests. */
  Distributor__providerId: optionalText,

  // Callers: API keys (hashed in storage) everywhere; Entra bearer tokens in Azure.
  Auth__entraTenantId: guid.optional(),
  Auth__entraAudience: optionalText,
  Auth__entraAuthorityHost: httpsUrl.default('https://login.microsoftonline.com'),
  /** The console's single-page app registration (Entra sign-in for engineers; the API key otherwise). */
  Console__entraClientId: guid.optional(),
  /** The delegated scope it asks for, e.g. api://atria-m365/Atria.Console. */
  Console__entraScope: optionalText,

  // Relay agent commands are signed with this Ed25519 private key (PEM, a Key Vault reference in Azure).
  Relay__signingKeyPem: optionalText,
  Relay__signingKeyId: z.string().min(1).max(64).default('atria-cloud-1'),
  /** How long a short read (find a user) waits for the agent; saga steps never wait (they park). */
  Relay__replyTimeoutInMs: positiveInt.default(5_000),

  /** AES-256 key (base64, 32 bytes) sealing initial passwords while their step waits in storage. */
  Secrets__operationKey: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64')
    .optional(),

  // The operation engine (shared/usecases/operations): leases, parking with the agent, backoff, deadlines.
  Engine__leaseDurationInMs: positiveInt.default(120_000),
  Engine__parkTimeoutInMs: positiveInt.default(120_000),
  Engine__retryBaseDelayInMs: positiveInt.default(2_000),
  Engine__retryMaxDelayInMs: positiveInt.default(300_000),
  Engine__createDeadlineInMinutes: positiveInt.default(24 * 60),
  Engine__changeDeadlineInMinutes: positiveInt.default(6 * 60),
  Engine__licenceHoldInDays: positiveInt.default(7),
  /** Per instance: one customer's operations run at once by the directory worker (below maxConcurrentCalls). */
  Engine__maxRunsPerCustomer: positiveInt.default(6),

  // Money safety for every purchase made through this API (shared/usecases/subscriptions.ts): spend per
  // UTC day (list price × quantity, in the offer's currency) per provider and per customer, and the amount
  // of one buy above which it waits for POST /commerce-operations/{id}/approve.
  Commerce__dailySpendCapPerProvider: z.coerce.number().nonnegative().default(10_000),
  Commerce__dailySpendCapPerCustomer: z.coerce.number().nonnegative().default(2_000),
  Commerce__approvalThreshold: z.coerce.number().nonnegative().default(500),

  // Seat autoscaling (issue 15): the sweep's NCRONTAB (six fields), a kill switch that stops every
  // autoscale change at once (decisions are still recorded, as withheld), run-wide caps on bought seats
  // and commitment spend, and how many customers one sweep decides at a time.
  Autoscale__sweepSchedule: z
    .string()
    .trim()
    .regex(/^\S+( \S+){5}$/, 'six NCRONTAB fields: second minute hour day month day-of-week')
    .default('0 30 2 * * *'),
  Autoscale__killSwitch: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((v) => v === 'true' || v === '1'),
  Autoscale__seatsPerRun: z.coerce.number().int().nonnegative().default(500),
  Autoscale__spendPerRun: z.coerce.number().nonnegative().default(20_000),
  Autoscale__concurrency: positiveInt.default(8),

  // Accidental bulk delete/disable guard (like Entra Connect's threshold).
  Guard__maxSharePercent: z.coerce.number().min(1).max(100).default(10),
  Guard__minUsers: positiveInt.default(20),
  Guard__windowInMinutes: positiveInt.default(60),

  // Onboarding sync (issue 16): a drift pass deleting more than the count, or more than the share of the
  // customer's users once at least the minimum is deleted, stops and waits for confirmation (Entra
  // Connect's export-deletion threshold, default 500).
  Onboarding__deleteThresholdCount: positiveInt.default(500),
  Onboarding__deleteThresholdPercent: z.coerce.number().min(1).max(100).default(20),
  Onboarding__deleteThresholdMinimum: positiveInt.default(10),
  /** The scheduled full reconciliation behind delta sync (six NCRONTAB fields; weekly by default). */
  Onboarding__reconcileSchedule: z
    .string()
    .trim()
    .regex(/^\S+( \S+){5}$/, 'six NCRONTAB fields: second minute hour day month day-of-week')
    .default('0 0 3 * * 0'),
  /** How long a reading job's lease holds: after a crash the drift timer resumes it once this passed. */
  Onboarding__leaseInMs: positiveInt.default(120_000),

  // Local host only.
  LocalHost__port: positiveInt.default(7071),
});

type Problem = { setting: string; message: string };

/**
 * Rules across settings, checked on the raw values so they are reported together with the per-setting
 * problems (zod skips refinements once a field has failed).
 */
function crossChecks(s: Record<string, string>): Problem[] {
  const problems: Problem[] = [];
  const has = (name: string): boolean => s[name] !== undefined;
  if (!has('TableStorage') && !has('TableStorage__tableServiceUri')) {
    problems.push({
      setting: 'TableStorage',
      message: 'set TableStorage (connection string) or TableStorage__tableServiceUri (managed identity)',
    });
  }
  if (has('Graph__clientSecret') && !has('Graph__clientId')) {
    problems.push({ setting: 'Graph__clientId', message: 'required when a Graph credential is set' });
  }
  if (has('Graph__clientId') && !has('Graph__clientSecret') && !has('Graph__certificatePath')) {
    problems.push({
      setting: 'Graph__clientSecret',
      message: 'set Graph__clientSecret or Graph__certificatePath',
    });
  }
  const pc = ['PartnerCenter__tenantId', 'PartnerCenter__clientId', 'PartnerCenter__clientSecret'];
  if (pc.some(has)) {
    for (const name of pc.filter((n) => !has(n)))
      problems.push({ setting: name, message: 'required with the other PartnerCenter__ settings' });
  }
  const distributor = ['Distributor__clientId', 'Distributor__clientSecret', 'Distributor__providerId'];
  if (distributor.some(has)) {
    for (const name of distributor.filter((n) => !has(n)))
      problems.push({ setting: name, message: 'required with the other Distributor__ credentials' });
  }
  if (has('PartnerCenter__providerId') && !has('PartnerCenter__clientId')) {
    problems.push({ setting: 'PartnerCenter__clientId', message: 'required with PartnerCenter__providerId' });
  }
  if (s.ATRIA_ENVIRONMENT === 'azure' && !has('Secrets__operationKey')) {
    problems.push({ setting: 'Secrets__operationKey', message: 'required in Azure (a Key Vault reference)' });
  }
  if (s.ATRIA_ENVIRONMENT === 'azure' && !has('Auth__entraTenantId')) {
    problems.push({
      setting: 'Auth__entraTenantId',
      message: 'required in Azure (callers use Entra tokens)',
    });
  }
  return problems;
}

export type Settings = z.infer<typeof settingsSchema>;

export class ConfigError extends Error {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    super(`Invalid configuration: ${problems.map((p) => `${p.setting} (${p.message})`).join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Parses the environment once; throws ConfigError naming every bad setting (never its value). */
export function loadSettings(env: Record<string, string | undefined>): Settings {
  const input: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') input[name] = value;
  }
  const parsed = settingsSchema.safeParse(input);
  const problems: Problem[] = parsed.success
    ? []
    : parsed.error.issues.map((issue) => ({
        setting: issue.path.map(String).join('.') || '(root)',
        message: issue.message,
      }));
  problems.push(...crossChecks(input));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  return parsed.data;
}
