import { describe, expect, it } from 'vitest';
import { CALLER_RECENT_IN_MS, createCallerRegistry } from '../../../shared/usecases/callers.js';
import { MemoryStore, TestClock } from '../engine/world.js';

/**
 * Every request authenticates, so each instance reads a credential row at most once per
 * CALLER_RECENT_IN_MS. The secret is still checked on every request; a revocation is immediate on the
 * instance that made it and reaches the others within that window.
 */
describe('caller credentials read through a short memo', () => {
  it('checks the secret every time, revokes at once here and within CALLER_RECENT_IN_MS elsewhere', async () => {
    const store = new MemoryStore();
    const clock = new TestClock();
    const here = createCallerRegistry({ store, clock });
    const elsewhere = createCallerRegistry({ store, clock });
    const { apiKey } = await here.createApiKey({ providerId: 'acme', name: 'k' });
    const second = await here.createApiKey({ providerId: 'acme', name: 'k2' });
    expect((await here.authenticateApiKey(apiKey)).providerId).toBe('acme');
    expect((await elsewhere.authenticateApiKey(apiKey)).providerId).toBe('acme');
    // A remembered row never makes a wrong secret right.
    const [prefix = '', keyId = ''] = apiKey.split('_');
    await expect(here.authenticateApiKey(`${prefix}_${keyId}_${'x'.repeat(32)}`)).rejects.toMatchObject({
      code: 'Unauthenticated',
    });

    await here.revokeApiKey(keyId);
    await expect(here.authenticateApiKey(apiKey)).rejects.toMatchObject({ code: 'Unauthenticated' });
    await new Promise((resolve) => setTimeout(resolve, CALLER_RECENT_IN_MS));
    await expect(elsewhere.authenticateApiKey(apiKey)).rejects.toMatchObject({ code: 'Unauthenticated' });
    // The instance that revokes a key it remembers refuses it at once.
    expect((await elsewhere.authenticateApiKey(second.apiKey)).providerId).toBe('acme');
    await elsewhere.revokeApiKey(second.keyId);
    await expect(elsewhere.authenticateApiKey(second.apiKey)).rejects.toMatchObject({
      code: 'Unauthenticated',
    });
  });
});
