import { RestError, TableClient, TableServiceClient, type TableEntityResult } from '@azure/data-tables';
import type { TokenCredential } from '@azure/identity';
import type { z } from 'zod';
import { AppError } from '../../errors.js';
import type { Collection, ListOptions, Page, Store, Versioned } from '../../ports/store.js';
import { decodeKey, encodeKey } from './keys.js';

/**
 * Store over Azure Table storage. A value is kept as JSON split over `d0…dN` string properties (a
 * property holds at most 64 KiB), validated with the collection's schema on every read so a corrupt or
 * old-shaped row is an error, not a silent `undefined` field.
 */
const chunkChars = 30_000;
const maxChunks = 30;

export type TableStoreConnection =
  { connectionString: string } | { serviceUri: string; credential: TokenCredential };

function isLocalHttp(connectionString: string): boolean {
  return (
    /TableEndpoint=http:\/\//i.test(connectionString) || /UseDevelopmentStorage=true/i.test(connectionString)
  );
}

export function mapTableError(error: unknown, what: string): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof RestError) {
    const status = error.statusCode ?? 0;
    if (status === 404) return new AppError('NotFound', `${what} not found`, { cause: error });
    if (status === 409) return new AppError('AlreadyExists', `${what} already exists`, { cause: error });
    if (status === 412)
      return new AppError('ConcurrencyConflict', `${what} was changed by someone else`, { cause: error });
    if (status === 429 || status === 503 || status === 500 || status === 0) {
      return new AppError('Unavailable', `table storage unavailable (${status})`, {
        cause: error,
        retryable: true,
      });
    }
    return new AppError('Internal', `table storage error ${status}`, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new AppError('Unavailable', `table storage unreachable: ${message}`, {
    cause: error,
    retryable: true,
  });
}

/**
 * The SDK's continuation token is base64 of JSON `{ nextPartitionKey, nextRowKey }`; it would throw a
 * bare SyntaxError on anything else (which reads as storage being down). A token that is not one the
 * SDK issued is a forged or damaged cursor: the caller's mistake.
 */
function assertContinuationToken(token: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64').toString('latin1'));
  } catch {
    parsed = undefined;
  }
  const next = (parsed as { nextPartitionKey?: unknown } | null | undefined)?.nextPartitionKey;
  if (typeof next !== 'string') throw new AppError('Validation', 'the cursor is not one this API issued');
}

type Row = Record<string, unknown> & { partitionKey?: string; rowKey?: string };

export function serialize(value: unknown): Record<string, string> {
  const json = JSON.stringify(value);
  const count = Math.max(1, Math.ceil(json.length / chunkChars));
  if (count > maxChunks) throw new AppError('Validation', 'value too large for one table row');
  const out: Record<string, string> = {};
  for (let i = 0; i < count; i++) out[`d${i}`] = json.slice(i * chunkChars, (i + 1) * chunkChars);
  return out;
}

function deserialize(row: Row): unknown {
  let json = '';
  for (let i = 0; i < maxChunks; i++) {
    const part = row[`d${i}`];
    if (typeof part !== 'string') break;
    json += part;
  }
  return JSON.parse(json) as unknown;
}

class TableCollection<T> implements Collection<T> {
  private ready: Promise<void> | undefined;

  constructor(
    private readonly client: TableClient,
    private readonly name: string,
    private readonly schema: z.ZodType<T>,
  ) {}

  private async ensureTable(): Promise<void> {
    this.ready ??= this.client.createTable().catch((error: unknown) => {
      this.ready = undefined;
      throw mapTableError(error, `table ${this.name}`);
    });
    return this.ready;
  }

  private toVersioned(row: TableEntityResult<Row>): Versioned<T> {
    const parsed = this.schema.safeParse(deserialize(row));
    if (!parsed.success) {
      throw new AppError('Internal', `stored ${this.name} row does not match its schema`, {
        details: { issues: parsed.error.issues.map((i) => i.path.join('.')) },
      });
    }
    return {
      partitionKey: decodeKey(row.partitionKey ?? ''),
      rowKey: decodeKey(row.rowKey ?? ''),
      value: parsed.data,
      etag: row.etag,
    };
  }

  private validate(value: T): T {
    const parsed = this.schema.safeParse(value);
    if (!parsed.success) {
      throw new AppError(
        'Validation',
        `invalid ${this.name}: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`,
      );
    }
    return parsed.data;
  }

  async get(partitionKey: string, rowKey: string): Promise<Versioned<T> | undefined> {
    await this.ensureTable();
    try {
      const row = await this.client.getEntity<Row>(encodeKey(partitionKey), encodeKey(rowKey));
      return this.toVersioned(row);
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw mapTableError(error, this.name);
    }
  }

  async create(partitionKey: string, rowKey: string, value: T): Promise<Versioned<T>> {
    await this.ensureTable();
    const data = this.validate(value);
    try {
      const result = await this.client.createEntity({
        partitionKey: encodeKey(partitionKey),
        rowKey: encodeKey(rowKey),
        ...serialize(data),
      });
      return { partitionKey, rowKey, value: data, etag: result.etag ?? '' };
    } catch (error) {
      throw mapTableError(error, `${this.name} ${partitionKey}/${rowKey}`);
    }
  }

  async replace(partitionKey: string, rowKey: string, value: T, etag: string): Promise<Versioned<T>> {
    await this.ensureTable();
    const data = this.validate(value);
    try {
      const result = await this.client.updateEntity(
        { partitionKey: encodeKey(partitionKey), rowKey: encodeKey(rowKey), ...serialize(data) },
        'Replace',
        { etag },
      );
      return { partitionKey, rowKey, value: data, etag: result.etag ?? '' };
    } catch (error) {
      // A replace of a row deleted meanwhile is a lost update too.
      if (error instanceof RestError && error.statusCode === 404) {
        throw new AppError(
          'ConcurrencyConflict',
          `${this.name} ${partitionKey}/${rowKey} was deleted meanwhile`,
        );
      }
      throw mapTableError(error, `${this.name} ${partitionKey}/${rowKey}`);
    }
  }

  async upsert(partitionKey: string, rowKey: string, value: T): Promise<Versioned<T>> {
    await this.ensureTable();
    const data = this.validate(value);
    try {
      const result = await this.client.upsertEntity(
        { partitionKey: encodeKey(partitionKey), rowKey: encodeKey(rowKey), ...serialize(data) },
        'Replace',
      );
      return { partitionKey, rowKey, value: data, etag: result.etag ?? '' };
    } catch (error) {
      throw mapTableError(error, `${this.name} ${partitionKey}/${rowKey}`);
    }
  }

  async delete(partitionKey: string, rowKey: string, etag?: string): Promise<void> {
    await this.ensureTable();
    try {
      await this.client.deleteEntity(
        encodeKey(partitionKey),
        encodeKey(rowKey),
        etag === undefined ? {} : { etag },
      );
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return;
      throw mapTableError(error, `${this.name} ${partitionKey}/${rowKey}`);
    }
  }

  async listPage(partitionKey: string, options: ListOptions = {}): Promise<Page<T>> {
    if (options.continuationToken !== undefined) assertContinuationToken(options.continuationToken);
    await this.ensureTable();
    const pk = encodeKey(partitionKey);
    let filter = `PartitionKey eq '${pk.replace(/'/g, "''")}'`;
    if (options.rowKeyPrefix !== undefined && options.rowKeyPrefix !== '') {
      const prefix = encodeKey(options.rowKeyPrefix).replace(/'/g, "''");
      // Every key with the prefix sorts between the prefix and the prefix followed by the highest char.
      filter += ` and RowKey ge '${prefix}' and RowKey lt '${prefix}\uffff'`;
    }
    try {
      const iterator = this.client.listEntities<Row>({ queryOptions: { filter } }).byPage({
        maxPageSize: options.pageSize ?? 100,
        ...(options.continuationToken === undefined ? {} : { continuationToken: options.continuationToken }),
      });
      const next = await iterator.next();
      if (next.done === true) return { items: [] };
      const page = next.value as TableEntityResult<Row>[] & { continuationToken?: string };
      return {
        items: page.map((row) => this.toVersioned(row)),
        ...(page.continuationToken === undefined ? {} : { continuationToken: page.continuationToken }),
      };
    } catch (error) {
      throw mapTableError(error, this.name);
    }
  }

  async *list(
    partitionKey: string,
    options: Omit<ListOptions, 'continuationToken'> = {},
  ): AsyncIterable<Versioned<T>> {
    let continuationToken: string | undefined;
    do {
      const page = await this.listPage(partitionKey, {
        ...options,
        ...(continuationToken === undefined ? {} : { continuationToken }),
      });
      yield* page.items;
      continuationToken = page.continuationToken;
    } while (continuationToken !== undefined);
  }
}

/** Table names: 3–63 alphanumerics starting with a letter; we prefix ours so they group together. */
function tableName(name: string): string {
  const cleaned = `atria${name.replace(/[^A-Za-z0-9]/g, '')}`;
  return cleaned.slice(0, 63);
}

export function createTableStore(connection: TableStoreConnection): Store {
  const clientFor = (table: string): TableClient =>
    'connectionString' in connection
      ? TableClient.fromConnectionString(connection.connectionString, table, {
          allowInsecureConnection: isLocalHttp(connection.connectionString),
        })
      : new TableClient(connection.serviceUri, table, connection.credential);
  const service =
    'connectionString' in connection
      ? TableServiceClient.fromConnectionString(connection.connectionString, {
          allowInsecureConnection: isLocalHttp(connection.connectionString),
        })
      : new TableServiceClient(connection.serviceUri, connection.credential);
  const collections = new Map<string, TableCollection<unknown>>();
  return {
    collection<T>(name: string, schema: z.ZodType<T>): Collection<T> {
      const existing = collections.get(name);
      if (existing !== undefined) return existing as unknown as Collection<T>;
      const created = new TableCollection<T>(clientFor(tableName(name)), name, schema);
      collections.set(name, created);
      return created;
    },
    async ping(): Promise<void> {
      try {
        const iterator = service.listTables().byPage({ maxPageSize: 1 });
        await iterator.next();
      } catch (error) {
        throw mapTableError(error, 'table service');
      }
    },
  };
}
