import { describe, expect, it } from 'vitest';
import { AppError, InvalidMessageError } from '../../../shared/errors.js';
import { world } from './world.js';
import { activeKey, engineCollections, HELD_PARTITION } from '../../../shared/usecases/operations/records.js';

const base = {
  type: 'user.create' as const,
  v: 1 as const,
  providerId: 'prov',
  customerId: 'contoso',
};

describe('queued creates', () => {
  it('carries an initial password by a single-use passwordRef, so AD users can be created through the queue', async () => {
    const w = await world();
    const { passwordRef } = await w.provisioning.dropPassword(w.caller, 'contoso', 'Str0ng!Passw0rd#9');
    const { operation } = await w.provisioning.acceptQueuedCreate(
      {
        ...base,
        idempotencyKey: 'q-1',
        passwordRef,
        user: {
          userId: 'u-q',
          userPrincipalName: 'q@fed.contoso.example',
          displayName: 'Queued',
          accountEnabled: true,
        },
      },
      'c-1',
    );
    expect(operation.sealedPassword).toBeUndefined(); // never shown
    await w.deliverOne();
    const sent = w.agent.inbox[0]?.command;
    expect(sent?.type === 'createUser' && sent.user.password).toBe('Str0ng!Passw0rd#9');
    expect(sent?.type === 'createUser' && sent.user.enabled).toBe(true);
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('succeeded');
    // Single use: the same reference cannot carry a password again.
    await expect(
      w.provisioning.acceptQueuedCreate(
        {
          ...base,
          idempotencyKey: 'q-2',
          passwordRef,
          user: {
            userId: 'u-q2',
            userPrincipalName: 'q2@fed.contoso.example',
            displayName: 'Q2',
            accountEnabled: true,
          },
        },
        'c-2',
      ),
    ).rejects.toMatchObject({ deadLetterReason: 'UnknownPasswordRef' });
  });

  it('refuses, as dead-letter material, a create for an unknown customer or one that does not fit it', async () => {
    const w = await world();
    const unknown = w.provisioning.acceptQueuedCreate(
      {
        ...base,
        customerId: 'nobody',
        idempotencyKey: 'q-3',
        user: {
          userId: 'u-x',
          userPrincipalName: 'x@fed.contoso.example',
          displayName: 'X',
          accountEnabled: false,
        },
      },
      'c',
    );
    await expect(unknown).rejects.toBeInstanceOf(InvalidMessageError);
    await expect(unknown).rejects.toMatchObject({ deadLetterReason: 'RejectedNotFound' });
    // An enabled hybrid user without a password does not fit the customer.
    await expect(
      w.provisioning.acceptQueuedCreate(
        {
          ...base,
          idempotencyKey: 'q-4',
          user: {
            userId: 'u-y',
            userPrincipalName: 'y@fed.contoso.example',
            displayName: 'Y',
            accountEnabled: true,
          },
        },
        'c',
      ),
    ).rejects.toMatchObject({ deadLetterReason: 'RejectedValidation' });
  });
});

describe('sweeps', () => {
  it('stops retrying a licence hold after its bounded time and says so on the operation', async () => {
    const w = await world({ mode: 'cloudOnly', deps: { licenceHoldInMs: 24 * 3600_000 } });
    w.cloud.assignLicences = () => Promise.reject(new AppError('LicenceUnavailable', 'no free seat'));
    const { operation } = await w.provisioning.requestCreateUser({
      caller: w.caller,
      customerId: 'contoso',
      request: {
        userId: 'u-l',
        userPrincipalName: 'l@fed.contoso.example',
        displayName: 'L',
        accountEnabled: true,
        licencePlan: 'E3',
      },
      correlationId: 'c',
    });
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('needsLicence');
    expect((await w.provisioning.sweepHeldOperations()).queued).toBe(1);
    await w.pump();
    w.clock.advance(25 * 3600_000);
    const late = await w.provisioning.sweepHeldOperations();
    expect(late).toMatchObject({ queued: 0, stopped: 1 });
    const held = await w.provisioning.getOperation(w.caller, operation.operationId);
    expect(held.state).toBe('needsLicence');
    expect(held.error?.code).toBe('LicenceHoldExpired');
    expect(held.error?.message).toContain('/retry');
    expect((await w.provisioning.sweepHeldOperations()).queued).toBe(0);
    // …and a retry starts it again.
    await w.provisioning.retryOperation({
      caller: w.caller,
      operationId: operation.operationId,
      correlationId: 'c',
    });
    expect((await w.provisioning.sweepHeldOperations()).queued).toBe(1);
  });

  it('repairs a hold whose licence-sweep row a crash never wrote: the operation sweep re-indexes it and it is retried', async () => {
    const w = await world({ mode: 'cloudOnly' });
    w.cloud.assignLicences = () => Promise.reject(new AppError('LicenceUnavailable', 'no free seat'));
    const { operation } = await w.provisioning.requestCreateUser({
      caller: w.caller,
      customerId: 'contoso',
      request: {
        userId: 'u-r',
        userPrincipalName: 'r@fed.contoso.example',
        displayName: 'R',
        accountEnabled: true,
        licencePlan: 'E3',
      },
      correlationId: 'c',
    });
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('needsLicence');
    // The crash: the operation says held, its row in the licence sweep's index was never written.
    await engineCollections(w.store).held.delete(HELD_PARTITION, activeKey('prov', operation.operationId));
    expect((await w.provisioning.sweepHeldOperations()).queued).toBe(0);
    await w.provisioning.sweepOperations();
    expect((await w.provisioning.sweepHeldOperations()).queued).toBe(1);
    w.cloud.assignLicences = () => Promise.resolve();
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('succeeded');
  });

  it('finishes a licence hold that outlasted the create deadline once seats arrive (the hold has its own bound)', async () => {
    const w = await world({ mode: 'cloudOnly' });
    const original = w.cloud.assignLicences.bind(w.cloud);
    let seats = 0;
    w.cloud.assignLicences = (id, change) =>
      seats > 0 ? original(id, change) : Promise.reject(new AppError('LicenceUnavailable', 'no free seat'));
    const { operation } = await w.provisioning.requestCreateUser({
      caller: w.caller,
      customerId: 'contoso',
      request: {
        userId: 'u-late',
        userPrincipalName: 'late@fed.contoso.example',
        displayName: 'Late',
        accountEnabled: true,
        licencePlan: 'E3',
      },
      correlationId: 'c',
    });
    await w.pump();
    w.clock.advance(30 * 3600_000); // past the 24 h create deadline, inside the 7-day hold
    seats = 1;
    expect((await w.provisioning.sweepHeldOperations()).queued).toBe(1);
    await w.pump();
    expect((await w.provisioning.getOperation(w.caller, operation.operationId)).state).toBe('succeeded');
    expect((await w.provisioning.getUser(w.caller, 'contoso', 'u-late')).state).toBe('active');
    expect(w.cloud.deleted).toBe(0);
  });
});
