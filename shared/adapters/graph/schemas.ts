import { z } from 'zod';

/** What we read back from Graph, checked before it becomes a domain value. Unknown fields pass through. */
const nullableString = z.string().nullable().optional();

export const assignedLicenseSchema = z.object({
  skuId: z.string(),
  disabledPlans: z.array(z.string()).optional().default([]),
});

export const graphUserSchema = z.object({
  id: z.string().min(1),
  userPrincipalName: z.string().min(1).optional(),
  displayName: nullableString,
  mailNickname: nullableString,
  accountEnabled: z.boolean().nullable().optional(),
  givenName: nullableString,
  surname: nullableString,
  jobTitle: nullableString,
  department: nullableString,
  mail: nullableString,
  usageLocation: nullableString,
  onPremisesImmutableId: nullableString,
  assignedLicenses: z.array(assignedLicenseSchema).optional(),
});
export type GraphUser = z.infer<typeof graphUserSchema>;

export const userCollectionSchema = z.object({
  value: z.array(graphUserSchema),
  '@odata.nextLink': z.string().optional(),
});

export const deltaPageSchema = z
  .object({
    value: z.array(
      graphUserSchema.extend({
        '@removed': z.object({ reason: z.enum(['changed', 'deleted']) }).optional(),
      }),
    ),
    '@odata.nextLink': z.string().optional(),
    '@odata.deltaLink': z.string().optional(),
  })
  .refine((page) => (page['@odata.nextLink'] === undefined) !== (page['@odata.deltaLink'] === undefined), {
    message: 'a delta page carries exactly one of @odata.nextLink and @odata.deltaLink',
  });

/** A groups/delta page (group-delta.md): tracked facts, members@delta, @removed on groups and members. */
export const groupDeltaPageSchema = z
  .object({
    value: z.array(
      z.object({
        id: z.string().min(1),
        displayName: z.string().optional(),
        mailNickname: z.string().nullable().optional(),
        securityEnabled: z.boolean().optional(),
        mailEnabled: z.boolean().optional(),
        groupTypes: z.array(z.string()).optional(),
        'members@delta': z
          .array(
            z.object({
              id: z.string().min(1),
              '@odata.type': z.string().optional(),
              '@removed': z.object({ reason: z.string() }).optional(),
            }),
          )
          .optional(),
        '@removed': z.object({ reason: z.string() }).optional(),
      }),
    ),
    '@odata.nextLink': z.string().optional(),
    '@odata.deltaLink': z.string().optional(),
  })
  .refine((page) => (page['@odata.nextLink'] === undefined) !== (page['@odata.deltaLink'] === undefined), {
    message: 'a delta page carries exactly one of @odata.nextLink and @odata.deltaLink',
  });

export const groupSchema = z.object({
  id: z.string().min(1),
  displayName: z.string(),
  mailNickname: z.string(),
  description: z.string().nullable().optional(),
  securityEnabled: z.boolean(),
  mailEnabled: z.boolean(),
  groupTypes: z.array(z.string()).optional().default([]),
});

export const groupCollectionSchema = z.object({ value: z.array(groupSchema) });

export const memberCollectionSchema = z.object({
  value: z.array(z.object({ id: z.string() })),
  '@odata.nextLink': z.string().optional(),
});

/** GET /groups?$select=id,assignedLicenses (group-based licensing). */
export const licensedGroupsSchema = z.object({
  value: z.array(
    z.object({
      id: z.string(),
      assignedLicenses: z.array(z.object({ skuId: z.string() })).default([]),
    }),
  ),
  '@odata.nextLink': z.string().optional(),
});

/** GET /groups/{id}/members?$select=id,licenseAssignmentStates (licenseassignmentstate.md). */
export const memberLicencesSchema = z.object({
  value: z.array(
    z.object({
      '@odata.type': z.string().optional(),
      id: z.string(),
      licenseAssignmentStates: z
        .array(
          z.object({
            skuId: z.string(),
            assignedByGroup: z.string().nullable().optional(),
            state: z.enum(['Active', 'ActiveWithError', 'Disabled', 'Error']),
            error: z.string().nullable().optional(),
          }),
        )
        .nullable()
        .optional(),
    }),
  ),
  '@odata.nextLink': z.string().optional(),
});

export const subscribedSkuSchema = z.object({
  skuId: z.string(),
  skuPartNumber: z.string(),
  appliesTo: z.string(),
  capabilityStatus: z.string(),
  consumedUnits: z.number().int(),
  prepaidUnits: z.object({
    enabled: z.number().int(),
    warning: z.number().int().optional().default(0),
    suspended: z.number().int().optional().default(0),
    lockedOut: z.number().int().optional().default(0),
  }),
  servicePlans: z.array(z.object({ servicePlanId: z.string(), servicePlanName: z.string() })).default([]),
  subscriptionIds: z.array(z.string()).optional().default([]),
});
export const subscribedSkuCollectionSchema = z.object({ value: z.array(subscribedSkuSchema) });

export const domainSchema = z.object({
  id: z.string(),
  authenticationType: z.enum(['Managed', 'Federated']),
  isDefault: z.boolean(),
  isInitial: z.boolean(),
  isVerified: z.boolean(),
});
export const domainCollectionSchema = z.object({
  value: z.array(domainSchema),
  '@odata.nextLink': z.string().optional(),
});

/** resources/domaindnsrecord.md with the txt and mx subtypes (domaindnstxtrecord.md, domaindnsmxrecord.md). */
export const domainDnsRecordCollectionSchema = z.object({
  value: z.array(
    z.object({
      recordType: z.string(),
      label: z.string(),
      ttl: z.number().int(),
      isOptional: z.boolean().optional().default(false),
      text: z.string().optional(),
      mailExchange: z.string().optional(),
      preference: z.number().int().optional(),
    }),
  ),
});

const protocol = z.enum(['wsFed', 'saml']);
const mfaBehavior = z.enum([
  'acceptIfMfaDoneByFederatedIdp',
  'enforceMfaByFederatedIdp',
  'rejectMfaByFederatedIdp',
]);
export const federationSchema = z.object({
  id: z.string(),
  displayName: z.string().nullable().optional(),
  issuerUri: z.string(),
  passiveSignInUri: z.string(),
  signingCertificate: z.string(),
  nextSigningCertificate: z.string().nullable().optional(),
  activeSignInUri: z.string().nullable().optional(),
  metadataExchangeUri: z.string().nullable().optional(),
  signOutUri: z.string().nullable().optional(),
  preferredAuthenticationProtocol: protocol,
  federatedIdpMfaBehavior: mfaBehavior.nullable().optional(),
  promptLoginBehavior: z
    .enum(['translateToFreshPasswordAuthentication', 'nativeSupport', 'disabled'])
    .nullable()
    .optional(),
  isSignedAuthenticationRequestRequired: z.boolean().nullable().optional(),
});
export const federationCollectionSchema = z.object({ value: z.array(federationSchema) });

/** Graph's error body (concepts/errors.md). */
export const graphErrorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string().optional().default(''),
    innerError: z.record(z.string(), z.unknown()).optional(),
  }),
});

export const batchResponseSchema = z.object({
  responses: z.array(
    z.object({
      id: z.string(),
      status: z.number().int(),
      headers: z.record(z.string(), z.string()).optional().default({}),
      body: z.unknown().optional(),
    }),
  ),
});

/** resources/companysubscription.md */
export const companySubscriptionSchema = z.object({
  id: z.string(),
  commerceSubscriptionId: z.string(),
  skuId: z.string(),
  skuPartNumber: z.string(),
  totalLicenses: z.number().int(),
  status: z.enum(['Enabled', 'Warning', 'Suspended', 'Deleted', 'LockedOut']),
  isTrial: z.boolean().nullable().optional(),
  createdDateTime: nullableString,
  nextLifecycleDateTime: nullableString,
  ownerId: nullableString,
  ownerTenantId: nullableString,
  ownerType: nullableString,
});
export const companySubscriptionCollectionSchema = z.object({
  value: z.array(companySubscriptionSchema),
  '@odata.nextLink': z.string().optional(),
});

/** resources/contract.md */
export const contractSchema = z.object({
  id: z.string(),
  customerId: z.string(),
  contractType: z.string(),
  defaultDomainName: nullableString,
  displayName: z.string().nullable().optional(),
});
export const contractCollectionSchema = z.object({
  value: z.array(contractSchema),
  '@odata.nextLink': z.string().optional(),
});

/** resources/organization.md (what we read). */
export const organizationSchema = z.object({
  id: z.string(),
  displayName: z.string().nullable().optional(),
  partnerTenantType: nullableString,
  verifiedDomains: z
    .array(z.object({ name: z.string(), isDefault: z.boolean(), isInitial: z.boolean(), type: z.string() }))
    .optional()
    .default([]),
});
export const organizationCollectionSchema = z.object({ value: z.array(organizationSchema) });

const unifiedRoles = z.object({
  unifiedRoles: z
    .array(z.object({ roleDefinitionId: z.string() }))
    .optional()
    .default([]),
});

/** resources/delegatedadminrelationship.md */
export const delegatedAdminRelationshipSchema = z.object({
  '@odata.etag': z.string().optional(),
  id: z.string(),
  displayName: z.string(),
  status: z.enum([
    'created',
    'approvalPending',
    'approved',
    'activating',
    'active',
    'expiring',
    'expired',
    'terminationRequested',
    'terminating',
    'terminated',
    'unknownFutureValue',
  ]),
  duration: z.string(),
  autoExtendDuration: z.string().optional().default('PT0S'),
  customer: z
    .object({ tenantId: z.string().nullable().optional(), displayName: z.string().nullable().optional() })
    .nullable()
    .optional(),
  accessDetails: unifiedRoles.nullable().optional(),
  createdDateTime: nullableString,
  // The create example shows "" for a relationship that is not active yet.
  activatedDateTime: nullableString,
  endDateTime: nullableString,
});
export const delegatedAdminRelationshipCollectionSchema = z.object({
  value: z.array(delegatedAdminRelationshipSchema),
  '@odata.nextLink': z.string().optional(),
});

/** resources/delegatedadminaccessassignment.md */
export const accessAssignmentSchema = z.object({
  '@odata.etag': z.string().optional(),
  id: z.string(),
  status: z.enum(['pending', 'active', 'deleting', 'deleted', 'error', 'unknownFutureValue']),
  accessContainer: z.object({ accessContainerId: z.string(), accessContainerType: z.string() }),
  accessDetails: unifiedRoles,
});
export const accessAssignmentCollectionSchema = z.object({
  value: z.array(accessAssignmentSchema),
  '@odata.nextLink': z.string().optional(),
});

/** resources/delegatedadminrelationshipoperation.md */
export const relationshipOperationCollectionSchema = z.object({
  value: z.array(
    z.object({
      id: z.string(),
      operationType: z.string(),
      status: z.enum(['notStarted', 'running', 'complete', 'failed', 'unknownFutureValue']),
      data: nullableString,
    }),
  ),
  '@odata.nextLink': z.string().optional(),
});

/** resources/delegatedadmincustomer.md */
export const delegatedAdminCustomerCollectionSchema = z.object({
  value: z.array(z.object({ id: z.string(), tenantId: z.string(), displayName: nullableString })),
  '@odata.nextLink': z.string().optional(),
});

/** resources/extensionproperty.md */
export const extensionPropertySchema = z.object({
  id: z.string(),
  name: z.string(),
  dataType: z.enum(['String', 'Boolean', 'Integer', 'LargeInteger', 'DateTime', 'Binary']),
  isMultiValued: z.boolean().optional().default(false),
});
export const extensionPropertyCollectionSchema = z.object({
  value: z.array(extensionPropertySchema),
  '@odata.nextLink': z.string().optional(),
});
export const extensionValueSchema = z.union([
  z.string(),
  z.number(),
  z.boolean(),
  z.array(z.string()),
  z.null(),
]);
