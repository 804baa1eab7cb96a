import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startStack, type Stack } from './stack.js';

/**
 * Tenant-creation examples of Partner Center's REST reference (kvamseek/partner-center developer/*.md)
 * replayed over HTTP against the peer: verify-domain-availability.md, validate-an-address.md,
 * create-a-customer.md (country rules, error-codes.md 6000xx), get-customer-agreement-metadata.md,
 * confirm-customer-consent-customer-agreement.md, get-confirmation-of-customer-agreement.md.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.stop();
});

const anyString: unknown = expect.any(String);
const anyArray: unknown = expect.any(Array);
const errorShape = (code: number) => ({ code, description: anyString, data: anyArray, source: 'PartnerFD' });
const prefix = (): string => `o${randomUUID().replaceAll('-', '').slice(0, 12)}`;

function customerBody(
  domainPrefix: string,
  address: Record<string, string> = {},
  company: Record<string, string> = {},
) {
  return {
    CompanyProfile: { Domain: `${domainPrefix}.onmicrosoft.com`, ...company },
    BillingProfile: {
      Culture: 'EN-US',
      Email: 'test@outlook.com',
      Language: 'en',
      CompanyName: 'test company',
      DefaultAddress: {
        FirstName: 'Test',
        LastName: 'Test',
        AddressLine1: 'One Microsoft Way',
        City: 'Redmond',
        State: 'WA',
        PostalCode: '98052',
        Country: 'US',
        ...address,
      },
    },
  };
}

describe('domain availability (verify-domain-availability.md)', () => {
  it('HEAD answers 404 with no body for a free domain and 200 once a customer holds it', async () => {
    const domainPrefix = prefix();
    const free = await stack.call('HEAD', `/v1/domains/${domainPrefix}.onmicrosoft.com`);
    expect(free.status).toBe(404);
    expect(free.body).toEqual({});
    expect((await stack.call('POST', '/v1/customers', { body: customerBody(domainPrefix) })).status).toBe(
      201,
    );
    expect((await stack.call('HEAD', `/v1/domains/${domainPrefix}.onmicrosoft.com`)).status).toBe(200);
    expect(
      (await stack.call('HEAD', `/v1/domains/${domainPrefix.toUpperCase()}.onmicrosoft.com`)).status,
    ).toBe(200);
    // The name is checked as given: the same prefix under another suffix is another domain.
    expect((await stack.call('HEAD', `/v1/domains/${domainPrefix}.example`)).status).toBe(404);
  });
});

describe('customers by name or domain (get-a-customer-by-name.md)', () => {
  it('filters with starts_with on CompanyName or Domain, ignoring case, as the documented size=0 example does', async () => {
    const domainPrefix = prefix();
    const body = customerBody(domainPrefix);
    const company = `Filter Co ${domainPrefix}`;
    const created = await stack.call('POST', '/v1/customers', {
      body: { ...body, BillingProfile: { ...body.BillingProfile, CompanyName: company } },
    });
    expect(created.status).toBe(201);
    const byName = await stack.call(
      'GET',
      `/v1/customers?size=0&filter=${encodeURIComponent(
        JSON.stringify({
          Field: 'CompanyName',
          Value: company.toUpperCase().slice(0, 20),
          Operator: 'starts_with',
        }),
      )}`,
    );
    expect(byName.status).toBe(200);
    expect(byName.body).toMatchObject({ items: [{ companyProfile: { companyName: company } }] });
    const byDomain = await stack.call(
      'GET',
      `/v1/customers?filter=${encodeURIComponent(
        JSON.stringify({
          Field: 'Domain',
          Value: `${domainPrefix}.onmicrosoft.com`,
          Operator: 'starts_with',
        }),
      )}`,
    );
    expect(byDomain.body).toMatchObject({
      totalCount: 1,
      items: [{ companyProfile: { domain: `${domainPrefix}.onmicrosoft.com` } }],
    });
    const unsupported = await stack.call(
      'GET',
      `/v1/customers?filter=${encodeURIComponent(JSON.stringify({ Field: 'Nope', Value: 'x' }))}`,
    );
    expect(unsupported.status).toBe(400);
  });
});

describe('address validation (validate-an-address.md)', () => {
  it('answers the documented VerifiedShippable and StreetPartial examples', async () => {
    const shippable = await stack.call('POST', '/v1/validations/address', {
      body: {
        AddressLine1: '1 Microsoft Way',
        City: 'Redmond',
        State: 'WA',
        PostalCode: '98052',
        Country: 'US',
      },
    });
    expect(shippable.status).toBe(200);
    expect(shippable.body).toEqual({
      originalAddress: {
        country: 'US',
        city: 'Redmond',
        state: 'WA',
        addressLine1: '1 Microsoft Way',
        postalCode: '98052',
      },
      suggestedAddresses: [
        { country: 'US', city: 'Redmond', state: 'WA', addressLine1: '1 Microsoft Way', postalCode: '98052' },
      ],
      status: 'VerifiedShippable',
    });

    const partial = await stack.call('POST', '/v1/validations/address', {
      body: {
        AddressLine1: 'Microsoft Way',
        City: 'Redmond',
        State: 'WA',
        PostalCode: '98052',
        Country: 'US',
      },
    });
    expect(partial.status).toBe(200);
    expect(partial.body).toMatchObject({
      originalAddress: { addressLine1: 'Microsoft Way' },
      suggestedAddresses: [{ addressLine1: '1 Microsoft Way' }],
      status: 'StreetPartial',
      validationMessage: anyString,
    });
  });

  it('a wrong US postal code is None with no suggestion; missing required fields are 400/800002', async () => {
    const none = await stack.call('POST', '/v1/validations/address', {
      body: {
        addressLine1: '1 Microsoft Way',
        city: 'Redmond',
        state: 'WA',
        postalCode: 'ABC',
        country: 'US',
      },
    });
    expect(none.body).toMatchObject({ status: 'None', suggestedAddresses: [] });
    const missing = await stack.call('POST', '/v1/validations/address', {
      body: { addressLine1: '1 Microsoft Way', city: 'Redmond', postalCode: '98052', country: 'US' },
    });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject(errorShape(800002));
  });

  it('answers a scripted status with up to three suggestions', async () => {
    await stack.admin('POST', '/addresses', {
      address: { addressLine1: '10 Main Street', postalCode: '1011 AB', country: 'NL' },
      status: 'PremisesPartial',
      suggestedAddresses: [
        { addressLine1: '10 A Main Street', postalCode: '1011 AB', city: 'Amsterdam', country: 'NL' },
        { addressLine1: '10 B Main Street', postalCode: '1011 AB', city: 'Amsterdam', country: 'NL' },
      ],
      validationMessage: 'Premises partial',
    });
    const answer = await stack.call('POST', '/v1/validations/address', {
      body: {
        addressLine1: '10 Main Street',
        city: 'Amsterdam',
        state: 'NH',
        postalCode: '1011 AB',
        country: 'NL',
      },
    });
    expect(answer.body).toMatchObject({ status: 'PremisesPartial', validationMessage: 'Premises partial' });
    expect(answer.body.suggestedAddresses).toHaveLength(2);
  });

  it('creating a customer with an address validation calls incorrect is refused', async () => {
    const answer = await stack.call('POST', '/v1/customers', {
      body: customerBody(prefix(), { PostalCode: 'nowhere' }),
    });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject(errorShape(800002));
  });
});

describe('country rules (create-a-customer.md, error-codes.md)', () => {
  const ru = {
    Country: 'RU',
    City: 'Moscow',
    State: 'Moscow',
    PostalCode: '101000',
    AddressLine1: '1 Tverskaya',
  };

  it('Brazil needs a registration number but no phone; Hungary needs both', async () => {
    expect(
      (await stack.call('POST', '/v1/customers', { body: customerBody(prefix(), { Country: 'BR' }) })).body,
    ).toMatchObject(errorShape(600049));
    const brazil = await stack.call('POST', '/v1/customers', {
      body: customerBody(prefix(), { Country: 'BR' }, { OrganizationRegistrationNumber: '12345678000190' }),
    });
    expect(brazil.status).toBe(201);
    const hungaryNoPhone = await stack.call('POST', '/v1/customers', {
      body: customerBody(prefix(), { Country: 'HU' }, { OrganizationRegistrationNumber: '12345678' }),
    });
    expect(hungaryNoPhone.body).toMatchObject(errorShape(600051));
    const hungary = await stack.call('POST', '/v1/customers', {
      body: customerBody(
        prefix(),
        { Country: 'HU', PhoneNumber: '+3612345678' },
        { OrganizationRegistrationNumber: '12345678' },
      ),
    });
    expect(hungary.status).toBe(201);
    expect(hungary.body).toMatchObject({ companyProfile: { organizationRegistrationNumber: '12345678' } });
  });

  it('a malformed number is 600050 naming the expected format; a number outside the listed countries is 600002', async () => {
    const malformed = await stack.call('POST', '/v1/customers', {
      body: customerBody(
        prefix(),
        { ...ru, PhoneNumber: '+74951234567' },
        { OrganizationRegistrationNumber: '12' },
      ),
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject(errorShape(600050));
    expect(String(malformed.body.description)).toContain('^(\\d{7}|\\d{10})$');
    const us = await stack.call('POST', '/v1/customers', {
      body: customerBody(prefix(), {}, { OrganizationRegistrationNumber: '123456' }),
    });
    expect(us.body).toMatchObject(errorShape(600002));
  });
});

describe('Microsoft Customer Agreement (get-customer-agreement-metadata.md, confirm-…, get-confirmation-…)', () => {
  it('the metadata query answers the MCA template; without a type it defaults to MicrosoftCloudAgreement', async () => {
    const mca = await stack.call('GET', '/v1/agreements?agreementType=MicrosoftCustomerAgreement');
    expect(mca.status).toBe(200);
    expect(mca.body).toMatchObject({
      totalCount: 1,
      items: [
        {
          templateId: '117a77b0-9360-443b-8795-c6dedc750cf9',
          agreementType: 'MicrosoftCustomerAgreement',
          agreementLink: 'https://aka.ms/customeragreement',
          versionRank: 0,
        },
      ],
      attributes: { objectType: 'Collection' },
    });
    const fallback = await stack.call('GET', '/v1/agreements');
    expect(fallback.body).toMatchObject({ items: [{ agreementType: 'MicrosoftCloudAgreement' }] });
    const all = await stack.call('GET', '/v1/agreements?agreementType=*');
    expect(all.body.totalCount).toBe(2);
  });

  it('records an attestation with that template, lists it by type, and refuses an unknown template', async () => {
    const created = await stack.call('POST', '/v1/customers', { body: customerBody(prefix()) });
    const customerId = z.object({ id: z.string() }).parse(created.body).id;
    const attestation = {
      primaryContact: {
        firstName: 'Tania',
        lastName: 'Carr',
        email: 'someone@example.com',
        phoneNumber: '1234567890',
      },
      templateId: '117a77b0-9360-443b-8795-c6dedc750cf9',
      dateAgreed: '2018-06-14T00:00:00.000Z',
      type: 'MicrosoftCustomerAgreement',
    };
    const unknownTemplate = await stack.call('POST', `/v1/customers/${customerId}/agreements`, {
      body: { ...attestation, templateId: randomUUID() },
    });
    expect(unknownTemplate.body).toMatchObject(errorShape(800002));
    expect(
      (await stack.call('POST', `/v1/customers/${customerId}/agreements`, { body: attestation })).status,
    ).toBe(201);
    const listed = await stack.call(
      'GET',
      `/v1/customers/${customerId}/agreements?agreementType=MicrosoftCustomerAgreement`,
    );
    expect(listed.body).toMatchObject({ totalCount: 1, items: [{ userId: anyString, ...attestation }] });
    const otherType = await stack.call(
      'GET',
      `/v1/customers/${customerId}/agreements?agreementType=MicrosoftCloudAgreement`,
    );
    expect(otherType.body.totalCount).toBe(0);
  });
});
