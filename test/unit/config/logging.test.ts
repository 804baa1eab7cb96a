import { describe, expect, it } from 'vitest';
import { loadSettings } from '../../../shared/config.js';
import { createLogger, type LogLevel } from '../../../shared/logging.js';

function capture() {
  const lines: string[] = [];
  const logger = createLogger((level: LogLevel, record) => lines.push(JSON.stringify({ level, ...record })), {
    level: 'debug',
  });
  return { lines, logger };
}

describe('log redaction', () => {
  it('never writes a secret-looking setting or an Authorization header', () => {
    const { lines, logger } = capture();
    const clientSecret = 'qR7~abcdefghijklmnopqrstuvwxyz012345';
    const storage =
      'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;';
    const settings = loadSettings({
      TableStorage: storage,
      Graph__clientId: '11111111-2222-3333-4444-555555555555',
      Graph__clientSecret: clientSecret,
    });
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLWJ5dGVz';
    logger.info('starting', { settings });
    logger.warn('request', { headers: { authorization: `Bearer ${jwt}`, 'x-functions-key': 'atr_abc_def' } });
    logger.error(`upstream said Bearer ${jwt} was bad; conn ${storage}`);
    logger.info('nested', { attempt: { body: { password: 'P@ssw0rd!', displayName: 'Ada' } } });

    const all = lines.join('\n');
    expect(all).not.toContain(clientSecret);
    expect(all).not.toContain(jwt);
    expect(all).not.toContain('Eby8vdM02x');
    expect(all).not.toContain('P@ssw0rd!');
    expect(all).not.toContain('atr_abc_def');
    // What is not secret still reaches the log.
    expect(all).toContain('Ada');
    expect(all).toContain('AccountName=devstoreaccount1');
    expect(lines).toHaveLength(4);
  });

  it('redacts an atr_ API key wherever it appears: messages, error text, nested values', () => {
    const { lines, logger } = capture();
    const apiKey = 'atr_k3y1d0000000_Qm9ndXNTZWNyZXRWYWx1ZUZvclRoZVRlc3Qx';
    const malformed = 'atr_short_notAValidKeyButStillSecret';
    logger.info(`caller sent ${apiKey} in the body`);
    logger.warn('rejected', { error: new Error(`key ${malformed} is malformed`) });
    logger.info('nested', { attempt: { note: [`retry with ${apiKey}`] } });

    const all = lines.join('\n');
    expect(all).not.toContain('Qm9ndXNTZWNyZXRWYWx1ZUZvclRoZVRlc3Qx');
    expect(all).not.toContain('notAValidKeyButStillSecret');
    expect(all).toContain('caller sent [redacted] in the body');
    expect(all).toContain('key [redacted] is malformed');
  });

  it('redacts a Functions key sent as ?code= from every logged URL, keeping the rest of the URL', () => {
    const { lines, logger } = capture();
    logger.info('request handled', {
      url: 'https://atria.example/api/customers/c1?code=s3cr3tFunctionsKey%3D%3D&sample=5',
    });
    logger.error('upstream failed for https://h.example/api/whoami?x=1&code=anotherKey123 (timeout)');

    const all = lines.join('\n');
    expect(all).not.toContain('s3cr3tFunctionsKey');
    expect(all).not.toContain('anotherKey123');
    expect(all).toContain('/api/customers/c1?code=[redacted]&sample=5');
    expect(all).toContain('/api/whoami?x=1&code=[redacted] (timeout)');
  });

  it('keeps an error code, the word "code" and the words "bearer token" in ordinary text', () => {
    const { lines, logger } = capture();
    logger.info('request failed', { code: 'Validation', detail: 'error code NotFound' });
    logger.warn('could not verify the bearer token');
    expect(lines.join('\n')).toContain('could not verify the bearer token');
    expect(lines.join('\n')).toContain('"code":"Validation"');
    expect(lines.join('\n')).toContain('error code NotFound');
  });

  it('drops records below the level', () => {
    const lines: string[] = [];
    const logger = createLogger((_l, r) => lines.push(JSON.stringify(r)), { level: 'warn' });
    logger.info('quiet');
    logger.warn('loud');
    expect(lines).toHaveLength(1);
  });
});
