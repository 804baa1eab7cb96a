import { TableClient, TableServiceClient } from '@azure/data-tables';

/**
 * Looks for known secrets where they must never be: every log line, and every property of every row of
 * every table in the storage account. Each secret is searched in the forms it would take if it leaked
 * through an encoding on the way: as is, base64, base64url, URL-encoded (encodeURIComponent and the
 * form encoding's `+` for spaces) and JSON-escaped (our Table store keeps values as JSON text).
 *
 * A finding names the place (`log[12]`, `table:operations/<pk>/<rk>/d0`) and which secret it was; the
 * value itself is never returned, so a failing assertion does not print the secret either.
 */
export interface SecretFinding {
  where: string;
  secretIndex: number;
}

/** Shorter needles would match by chance (a 4-character password is found in any long base64 blob). */
const minimumSecretLength = 6;

function formsOf(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms = new Set<string>([
    secret,
    bytes.toString('base64'),
    // Padding varies with what precedes the secret in a larger encoded value; the stem does not.
    bytes.toString('base64').replace(/=+$/, ''),
    bytes.toString('base64url'),
    encodeURIComponent(secret),
    new URLSearchParams({ s: secret }).toString().slice(2),
    JSON.stringify(secret).slice(1, -1),
  ]);
  return [...forms].filter((form) => form.length >= minimumSecretLength);
}

function isLocalHttp(connectionString: string): boolean {
  return (
    /TableEndpoint=http:\/\//i.test(connectionString) || /UseDevelopmentStorage=true/i.test(connectionString)
  );
}

/** Every string a row holds: each property, plus the row's `d0…dN` chunks joined (a secret may straddle two). */
function rowTexts(row: Record<string, unknown>): { property: string; text: string }[] {
  const out: { property: string; text: string }[] = [];
  const chunks: { index: number; text: string }[] = [];
  for (const [property, value] of Object.entries(row)) {
    if (property === 'odata.metadata' || property === 'etag') continue;
    const text =
      typeof value === 'string'
        ? value
        : value instanceof Uint8Array
          ? Buffer.from(value).toString('utf8')
          : JSON.stringify(value);
    if (text === undefined) continue;
    out.push({ property, text });
    const chunk = /^d(\d+)$/.exec(property);
    if (chunk?.[1] !== undefined && typeof value === 'string') chunks.push({ index: Number(chunk[1]), text });
  }
  if (chunks.length > 1) {
    chunks.sort((a, b) => a.index - b.index);
    out.push({ property: 'd*', text: chunks.map((c) => c.text).join('') });
  }
  return out;
}

export async function scanForSecrets(input: {
  logLines: string[];
  storageConnectionString: string;
  secrets: string[];
}): Promise<SecretFinding[]> {
  const short = input.secrets.findIndex((s) => s.length < minimumSecretLength);
  if (short >= 0)
    throw new Error(
      `secret ${short} is shorter than ${minimumSecretLength} characters: it would match by chance`,
    );
  const needles = input.secrets.map(formsOf);
  const findings: SecretFinding[] = [];
  const check = (where: string, text: string): void => {
    needles.forEach((forms, secretIndex) => {
      if (forms.some((form) => text.includes(form))) findings.push({ where, secretIndex });
    });
  };

  input.logLines.forEach((line, i) => check(`log[${i}]`, line));

  const options = isLocalHttp(input.storageConnectionString) ? { allowInsecureConnection: true } : {};
  const service = TableServiceClient.fromConnectionString(input.storageConnectionString, options);
  for await (const table of service.listTables()) {
    if (table.name === undefined) continue;
    const client = TableClient.fromConnectionString(input.storageConnectionString, table.name, options);
    for await (const entity of client.listEntities<Record<string, unknown>>()) {
      const where = `table:${table.name}/${entity.partitionKey}/${entity.rowKey}`;
      for (const { property, text } of rowTexts(entity)) check(`${where}/${property}`, text);
    }
  }
  return findings;
}
