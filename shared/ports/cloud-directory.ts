import type { AppError } from '../errors.js';

/**
 * One customer's Entra ID directory (Microsoft Graph in production). Domain types only; the adapter
 * owns the Graph shapes. Failures are AppErrors: NotFound, AlreadyExists (duplicate UPN or
 * onPremisesImmutableId), Validation, PasswordPolicy, UsageLocationRequired, LicenceUnavailable,
 * SyncStateExpired, Throttled (retryAfterInSeconds), Unavailable, Forbidden, InvalidCredentials.
 * Writes are idempotent where Graph allows: deleting a missing user, adding an existing member,
 * removing an absent member or re-assigning an assigned licence all succeed without a change.
 */
export interface CloudDirectory {
  readonly tenantId: string;

  /** Fails with AlreadyExists when the UPN or immutable id is taken (look the user up, then decide). */
  createUser(user: NewCloudUser): Promise<CloudUser>;
  /**
   * Creates the user idempotently by `idempotencyKey`: the new user carries the key in a directory
   * extension (where one is configured), and when the UPN is already taken the existing user is returned
   * (`adopted`) only if it carries that key or the expected `onPremisesImmutableId` — never a stranger's
   * account (then AlreadyExists). The lookup is a direct read by UPN, not an eventually consistent
   * `$filter`, so it holds across instances; a taken UPN not yet readable (replication) is retryable.
   */
  createUserOnce(user: NewCloudUser, idempotencyKey: string): Promise<{ user: CloudUser; adopted: boolean }>;
  /** Many creates in Graph JSON batches (20 per request); one result per input, in input order. */
  createUsers(users: NewCloudUser[]): Promise<BulkResult<CloudUser>[]>;
  /** By object id or UPN; NotFound when absent. */
  getUser(idOrUpn: string): Promise<CloudUser>;
  findUserByUpn(userPrincipalName: string): Promise<CloudUser | undefined>;
  findUserByImmutableId(onPremisesImmutableId: string): Promise<CloudUser | undefined>;
  updateUser(userId: string, patch: CloudUserPatch): Promise<void>;
  disableUser(userId: string): Promise<void>;
  enableUser(userId: string): Promise<void>;
  /** Soft delete (restorable for 30 days); succeeds when the user is already gone. */
  deleteUser(userId: string): Promise<void>;
  setPassword(userId: string, password: string, options?: SetPasswordOptions): Promise<void>;

  createGroup(group: NewCloudGroup): Promise<CloudGroup>;
  /** Member object ids. */
  listGroupMembers(groupId: string): Promise<string[]>;
  /** One page of the tenant's groups (`GET /groups`, up to 999 a page); pass back `nextCursor`. */
  listGroupsPage(cursor?: string): Promise<{ groups: CloudGroup[]; nextCursor?: string }>;
  addGroupMember(groupId: string, userId: string): Promise<void>;
  removeGroupMember(groupId: string, userId: string): Promise<void>;
  /** Groups that carry licences (group-based licensing) and their SKU ids (lower-case). */
  listLicensedGroups(): Promise<LicensedGroup[]>;
  /** The group's direct user members with their licence assignment states (user.licenseAssignmentStates). */
  listGroupMemberLicences(groupId: string): Promise<MemberLicences[]>;
  /** Re-runs group-based licensing for the user: Entra does not retry an error once seats are free. */
  reprocessLicenceAssignment(userId: string): Promise<void>;

  /** Adds and removes licences in one call; the user must have a usage location first. */
  /** One request (user-assignlicense.md); read the user afterwards if its licences are needed. */
  assignLicences(userId: string, change: LicenceChange): Promise<void>;
  /** Many licence changes in JSON batches; one result per input, in input order. */
  assignLicencesInBulk(changes: BulkLicenceChange[]): Promise<BulkResult<void>[]>;
  /** Seats bought (enabledUnits) and assigned (consumedUnits) per SKU. */
  listSubscribedSkus(): Promise<SubscribedSku[]>;

  /**
   * One page of user changes. Without a cursor a full round starts (current state); pass back
   * `nextCursor` until a page returns `deltaLink`, store that, and pass it later for changes since.
   * An expired deltaLink (7 days) fails with SyncStateExpired: start a new round without a cursor.
   */
  listUserChanges(cursor?: string): Promise<UserChangePage>;

  /**
   * One page of a users/delta round for onboarding: listUserChanges with the properties matching needs
   * (proxyAddresses, employeeId) selected too. Its deltaLink serves listUserChanges later (delta keeps
   * the first call's $select in the token).
   */
  listUserImportChanges(cursor?: string): Promise<ImportUserChangePage>;
  /**
   * One page of a groups/delta round tracking the group facts onboarding keeps and `members`: the first
   * round lists every group with all its members, later ones only what changed (cursor: the stored
   * nextLink or deltaLink; SyncStateExpired when the token is gone).
   */
  listGroupChanges(cursor?: string): Promise<GroupChangePage>;
  /**
   * Object ids of every member of an activated directory role (`GET /directoryRoles`, then each role's
   * members): the admins that are never matched automatically.
   */
  listDirectoryRoleMemberIds(): Promise<string[]>;

  getDomain(domainName: string): Promise<CloudDomain>;
  /** undefined when the domain is not federated. */
  getDomainFederation(domainName: string): Promise<DomainFederation | undefined>;
  /** Creates the federation (making the domain Federated) or updates the existing one. */
  putDomainFederation(domainName: string, federation: DomainFederationSettings): Promise<DomainFederation>;
  /** Removes the federation, converting the domain back to Managed; a domain not federated is a no-op. */
  deleteDomainFederation(domainName: string): Promise<void>;

  /** The tenant's commercial subscriptions (`GET /directory/subscriptions`), each with its seats and state. */
  listSubscriptions(): Promise<CompanySubscription[]>;
  /** By directory id, or by the commerce (e.g. Partner Center) subscription id; NotFound when absent. */
  getSubscription(key: string | { commerceSubscriptionId: string }): Promise<CompanySubscription>;
  /** In a partner tenant: the customer tenants it has a contract with (`GET /contracts`). */
  listContracts(): Promise<PartnerContract[]>;

  listDomains(): Promise<CloudDomain[]>;
  /** Adds a custom domain (unverified unless a verified parent covers it); an existing one is returned as is. */
  addDomain(domainName: string): Promise<CloudDomain>;
  /** The DNS records the customer publishes to prove ownership (TXT, or MX as the alternative). */
  listDomainVerificationRecords(domainName: string): Promise<DomainVerificationRecord[]>;
  /**
   * Asks Entra to check the records. Not yet verifiable (record not published, or the domain is verified
   * in another tenant) is an answer, not an error: poll again later. A verified domain answers verified.
   */
  verifyDomain(domainName: string): Promise<DomainVerification>;
  /** Deletes a domain nothing refers to any more; succeeds when it is already gone. */
  deleteDomain(domainName: string): Promise<void>;

  /** The tenant's organization: its partner tier (partnerTenantType) where it is a partner tenant. */
  getOrganization(): Promise<CloudOrganization>;

  // GDAP, called on the partner tenant's directory (DelegatedAdminRelationship.ReadWrite.All).
  /**
   * Creates a relationship in the `created` status. Display names are unique per partner, so a retry
   * after a lost answer returns the relationship it made (same display name and customer).
   */
  createDelegatedAdminRelationship(input: NewDelegatedAdminRelationship): Promise<DelegatedAdminRelationship>;
  getDelegatedAdminRelationship(relationshipId: string): Promise<DelegatedAdminRelationship>;
  listDelegatedAdminRelationships(filter?: {
    customerTenantId?: string;
  }): Promise<DelegatedAdminRelationship[]>;
  /** Only while `created`; reads the current etag for If-Match. */
  updateDelegatedAdminRelationship(
    relationshipId: string,
    patch: DelegatedAdminRelationshipPatch,
  ): Promise<DelegatedAdminRelationship>;
  /** Only while `created`; succeeds when it is already gone. */
  deleteDelegatedAdminRelationship(relationshipId: string): Promise<void>;
  /**
   * `lockForApproval` (created → approvalPending) or `terminate` (active → terminated); returns the
   * relationship afterwards. Repeating an action whose effect is already there changes nothing.
   */
  requestDelegatedAdminRelationshipAction(
    relationshipId: string,
    action: 'lockForApproval' | 'terminate',
  ): Promise<DelegatedAdminRelationship>;
  listDelegatedAdminAccessAssignments(relationshipId: string): Promise<DelegatedAdminAccessAssignment[]>;
  /** Once the relationship is active; one per security group (a repeat returns the existing one). */
  createDelegatedAdminAccessAssignment(
    relationshipId: string,
    assignment: { securityGroupId: string; roleDefinitionIds: string[] },
  ): Promise<DelegatedAdminAccessAssignment>;
  /** Succeeds when it is already gone. */
  deleteDelegatedAdminAccessAssignment(relationshipId: string, assignmentId: string): Promise<void>;
  listDelegatedAdminOperations(relationshipId: string): Promise<DelegatedAdminOperation[]>;
  /** Customers with an active relationship. */
  listDelegatedAdminCustomers(): Promise<DelegatedAdminCustomer[]>;

  /**
   * Directory extensions, called on the app's home tenant: defines `extension_{appId}_{name}` (or
   * returns the existing definition) for users of every tenant that consented to the app.
   */
  registerExtensionProperty(
    appId: string,
    name: string,
    options?: { dataType?: ExtensionDataType; isMultiValued?: boolean },
  ): Promise<ExtensionPropertyDefinition>;
  listExtensionProperties(appId: string): Promise<ExtensionPropertyDefinition[]>;
  /** The named extension attributes of a user (absent ones as null); NotFound when the user is. */
  getUserExtensionAttributes(
    idOrUpn: string,
    attributeNames: string[],
  ): Promise<Record<string, ExtensionValue>>;
  /** Users whose extension attribute equals the value (`$filter … eq …`). */
  findUsersByExtensionAttribute(
    attributeName: string,
    value: string | number | boolean,
  ): Promise<CloudUser[]>;
}

export type CloudDirectoryFactory = (tenantId: string) => CloudDirectory;

export type BulkResult<T> = { ok: true; value: T } | { ok: false; error: AppError };

export interface AssignedLicence {
  skuId: string;
  disabledPlanIds: string[];
}

export interface CloudUser {
  id: string;
  userPrincipalName: string;
  displayName: string;
  mailNickname: string | null;
  accountEnabled: boolean | null;
  givenName: string | null;
  surname: string | null;
  jobTitle: string | null;
  department: string | null;
  mail: string | null;
  usageLocation: string | null;
  /** base64 of the on-prem objectGUID for hybrid users; null for cloud-only users. */
  onPremisesImmutableId: string | null;
  assignedLicences: AssignedLicence[];
}

export interface NewCloudUser {
  userPrincipalName: string;
  displayName: string;
  mailNickname: string;
  /** Default true. */
  accountEnabled?: boolean;
  /** Required unless the UPN is in a federated domain and onPremisesImmutableId is set. */
  password?: string;
  forceChangePasswordNextSignIn?: boolean;
  onPremisesImmutableId?: string;
  /** ISO 3166 alpha-2; needed before licences can be assigned. */
  usageLocation?: string;
  givenName?: string;
  surname?: string;
  jobTitle?: string;
  department?: string;
  /** Directory extension values by full name (`extension_{appId}_{name}`), e.g. an operation marker. */
  extensionAttributes?: Record<string, ExtensionValue>;
}

export interface CloudUserPatch {
  userPrincipalName?: string;
  displayName?: string;
  mailNickname?: string;
  givenName?: string | null;
  surname?: string | null;
  jobTitle?: string | null;
  department?: string | null;
  usageLocation?: string;
  onPremisesImmutableId?: string | null;
  /** null clears a value. */
  extensionAttributes?: Record<string, ExtensionValue>;
}

export type ExtensionDataType = 'String' | 'Boolean' | 'Integer' | 'LargeInteger' | 'DateTime' | 'Binary';
export type ExtensionValue = string | number | boolean | string[] | null;

export interface ExtensionPropertyDefinition {
  id: string;
  /** The attribute name on users: extension_{appId without dashes}_{name}. */
  name: string;
  dataType: ExtensionDataType;
  isMultiValued: boolean;
}

export interface SetPasswordOptions {
  forceChangePasswordNextSignIn?: boolean;
}

export interface CloudGroup {
  id: string;
  displayName: string;
  mailNickname: string;
  description: string | null;
  securityEnabled: boolean;
  mailEnabled: boolean;
  groupTypes: string[];
}

export interface LicensedGroup {
  id: string;
  skuIds: string[];
}

/** One entry of user.licenseAssignmentStates (licenseassignmentstate.md). */
export interface LicenceAssignmentState {
  skuId: string;
  /** null when assigned directly; the group's id when inherited. */
  assignedByGroup: string | null;
  state: 'Active' | 'ActiveWithError' | 'Disabled' | 'Error';
  /** CountViolation (no seat free), MutuallyExclusiveViolation…; null or None when fine. */
  error: string | null;
}

export interface MemberLicences {
  id: string;
  states: LicenceAssignmentState[];
}

export interface NewCloudGroup {
  displayName: string;
  mailNickname: string;
  description?: string;
  /** Default: a security group (securityEnabled true, mailEnabled false, no groupTypes). */
  securityEnabled?: boolean;
  mailEnabled?: boolean;
  groupTypes?: string[];
}

export interface LicenceChange {
  add: AssignedLicence[];
  remove: string[];
}

export interface BulkLicenceChange extends LicenceChange {
  userId: string;
}

export interface SubscribedSku {
  skuId: string;
  skuPartNumber: string;
  appliesTo: string;
  capabilityStatus: string;
  /** Seats bought and active (prepaidUnits.enabled). */
  enabledUnits: number;
  /** Seats assigned to users. */
  consumedUnits: number;
  servicePlans: { servicePlanId: string; servicePlanName: string }[];
  /** Seats by the state of the subscriptions holding them (only `enabled` ones can be assigned). */
  prepaidUnits: LicenceUnits;
  /** Ids of the companySubscriptions that supply this SKU. */
  subscriptionIds: string[];
}

export interface LicenceUnits {
  enabled: number;
  warning: number;
  suspended: number;
  lockedOut: number;
}

export type CompanySubscriptionStatus = 'Enabled' | 'Warning' | 'Suspended' | 'Deleted' | 'LockedOut';

/**
 * One commercial subscription as the tenant's directory shows it. Graph has no field for the channel
 * (CSP, EA, third party) or the term: read those from the source (commerceSubscriptionId links to it).
 */
export interface CompanySubscription {
  id: string;
  commerceSubscriptionId: string;
  skuId: string;
  skuPartNumber: string;
  totalLicenses: number;
  status: CompanySubscriptionStatus;
  isTrial: boolean;
  createdDateTime: string | null;
  nextLifecycleDateTime: string | null;
  ownerId: string | null;
  /** The partner tenant that created the subscription, when one did. */
  ownerTenantId: string | null;
  ownerType: string | null;
}

export interface PartnerContract {
  id: string;
  customerTenantId: string;
  contractType: string;
  defaultDomainName: string | null;
  displayName: string;
}

export type UserChange =
  | { kind: 'upserted'; user: CloudUserSnapshot }
  /** permanently: false for a soft delete (restorable), true once purged. */
  | { kind: 'removed'; id: string; permanently: boolean };

/** What delta reports for a user: only the tracked properties, absent ones unknown (undefined). */
export type CloudUserSnapshot = { id: string } & Partial<Omit<CloudUser, 'id'>>;

export interface UserChangePage {
  changes: UserChange[];
  /** Present while the round has more pages. */
  nextCursor?: string;
  /** Present on the last page of a round: store it for the next round. */
  deltaLink?: string;
}

export type GroupChange =
  | {
      kind: 'upserted';
      /** The tracked facts as delta reports them (absent: unknown this round). */
      group: { id: string } & Partial<Omit<CloudGroup, 'id'>>;
      /** members@delta: ids added (or, in a first round, every member) and ids removed. */
      membersAdded: string[];
      membersRemoved: string[];
    }
  | { kind: 'removed'; id: string };

export interface GroupChangePage {
  changes: GroupChange[];
  nextCursor?: string;
  deltaLink?: string;
}

/** A user as onboarding reads it: the full user plus what matching needs. */
export interface ImportedCloudUser extends CloudUser {
  /** `SMTP:` marks the primary address. */
  proxyAddresses: string[];
  employeeId: string | null;
}

export type ImportUserChange =
  { kind: 'upserted'; user: ImportedCloudUser } | { kind: 'removed'; id: string; permanently: boolean };

export interface ImportUserChangePage {
  changes: ImportUserChange[];
  nextCursor?: string;
  deltaLink?: string;
}

export interface CloudDomain {
  id: string;
  authenticationType: 'Managed' | 'Federated';
  isDefault: boolean;
  isInitial: boolean;
  isVerified: boolean;
}

export interface DomainVerificationRecord {
  recordType: 'Txt' | 'Mx';
  /** The DNS name the record goes on (the domain itself). */
  label: string;
  ttl: number;
  isOptional: boolean;
  /** TXT records: the value to publish (MS=ms…). */
  text?: string;
  /** MX records: the host and preference to publish. */
  mailExchange?: string;
  preference?: number;
}

export type DomainVerification =
  { verified: true; domain: CloudDomain } | { verified: false; reason: string };

export interface DomainFederationSettings {
  displayName?: string;
  issuerUri: string;
  passiveSignInUri: string;
  signingCertificate: string;
  nextSigningCertificate?: string;
  activeSignInUri?: string;
  metadataExchangeUri?: string;
  signOutUri?: string;
  preferredAuthenticationProtocol?: 'wsFed' | 'saml';
  federatedIdpMfaBehavior?:
    'acceptIfMfaDoneByFederatedIdp' | 'enforceMfaByFederatedIdp' | 'rejectMfaByFederatedIdp';
  promptLoginBehavior?: 'translateToFreshPasswordAuthentication' | 'nativeSupport' | 'disabled';
  isSignedAuthenticationRequestRequired?: boolean;
}

export interface DomainFederation extends DomainFederationSettings {
  id: string;
  preferredAuthenticationProtocol: 'wsFed' | 'saml';
  federatedIdpMfaBehavior:
    'acceptIfMfaDoneByFederatedIdp' | 'enforceMfaByFederatedIdp' | 'rejectMfaByFederatedIdp';
}

export interface CloudOrganization {
  id: string;
  displayName: string;
  /** e.g. resellerPartnerDelegatedAdmin (1-Tier), valueAddedResellerPartnerDelegatedAdmin (2-Tier); null otherwise. */
  partnerTenantType: string | null;
  verifiedDomains: { name: string; isDefault: boolean; isInitial: boolean; type: string }[];
}

export type DelegatedAdminRelationshipStatus =
  | 'created'
  | 'approvalPending'
  | 'approved'
  | 'activating'
  | 'active'
  | 'expiring'
  | 'expired'
  | 'terminationRequested'
  | 'terminating'
  | 'terminated'
  | 'unknownFutureValue';

export interface NewDelegatedAdminRelationship {
  /** At most 50 characters, unique across the partner's relationships. */
  displayName: string;
  /** ISO 8601, P1D to P2Y (e.g. P730D). */
  duration: string;
  customerTenantId?: string;
  customerDisplayName?: string;
  roleDefinitionIds: string[];
  /** PT0S (default: expires) or P180D (renews; not with Global Administrator). */
  autoExtendDuration?: 'PT0S' | 'P180D';
}

export interface DelegatedAdminRelationshipPatch {
  displayName?: string;
  duration?: string;
  customerTenantId?: string;
  roleDefinitionIds?: string[];
}

export interface DelegatedAdminRelationship {
  id: string;
  displayName: string;
  status: DelegatedAdminRelationshipStatus;
  duration: string;
  autoExtendDuration: string;
  customerTenantId: string | null;
  customerDisplayName: string | null;
  roleDefinitionIds: string[];
  createdDateTime: string | null;
  activatedDateTime: string | null;
  endDateTime: string | null;
  etag: string | null;
}

export interface DelegatedAdminAccessAssignment {
  id: string;
  securityGroupId: string;
  roleDefinitionIds: string[];
  status: 'pending' | 'active' | 'deleting' | 'deleted' | 'error' | 'unknownFutureValue';
  etag: string | null;
}

export interface DelegatedAdminOperation {
  id: string;
  operationType: string;
  status: 'notStarted' | 'running' | 'complete' | 'failed' | 'unknownFutureValue';
  data: string | null;
}

export interface DelegatedAdminCustomer {
  tenantId: string;
  displayName: string | null;
}
