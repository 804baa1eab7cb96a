// The Functions app on Flex Consumption. Every connection is identity-based with the user-assigned identity;
// the settings below are the names shared/config.ts reads (plus the Functions host's own).
param name string
param location string = resourceGroup().location
param tags object = {}
param serviceName string = 'api'

param appServicePlanId string
param storageAccountName string
param deploymentStorageContainerName string
param applicationInsightsName string
param identityId string
param identityClientId string
@description('<namespace>.servicebus.windows.net')
param serviceBusFullyQualifiedNamespace string
@description('Key Vault URI, ending in a slash.')
param keyVaultUri string

param instanceMemoryMB int = 2048
param maximumInstanceCount int = 40

param entraTenantId string
param entraAudience string = ''
param graphClientId string = ''
param graphHomeTenantId string = ''
param partnerCenterProviderId string = ''
param distributorClientId string = ''
param distributorProviderId string = ''
param partnerCenterTenantId string = ''
param partnerCenterClientId string = ''
param consoleEntraClientId string = ''
param consoleEntraScope string = ''

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Versionless secret URIs (…/secrets/<name>): a rotated secret is picked up without redeploying.
var secretsUri = '${keyVaultUri}secrets'

var baseSettings = {
  ATRIA_ENVIRONMENT: 'azure'
  LOG_LEVEL: 'info'

  // Functions host storage (triggers, timers, leases) over the identity; the account has no shared keys.
  AzureWebJobsStorage__accountName: stg.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId

  // The app's own state in Table storage (same account).
  TableStorage__tableServiceUri: 'https://${stg.name}.table.${environment().suffixes.storage}'
  TableStorage__credential: 'managedidentity'
  TableStorage__clientId: identityClientId

  // Service Bus trigger binding and the app's senders share this connection.
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId

  // Callers present Entra tokens in Azure.
  Auth__entraTenantId: entraTenantId
  Auth__entraAudience: entraAudience

  // Relay commands are signed with this Ed25519 key (PEM).
  Relay__signingKeyPem: '@Microsoft.KeyVault(SecretUri=${secretsUri}/relay-signing-key-pem)'

  // AES-256 key sealing initial passwords while their provisioning step waits in Table storage.
  Secrets__operationKey: '@Microsoft.KeyVault(SecretUri=${secretsUri}/operation-key)'

  // App Insights has local auth off: telemetry is sent with the identity.
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

// Graph and Partner Center settings only once their ids are known: config.ts rejects a secret without its
// client id (and an unresolved Key Vault reference is a non-empty value).
var graphSettings = empty(graphClientId)
  ? {}
  : {
      Graph__clientId: graphClientId
      Graph__clientSecret: '@Microsoft.KeyVault(SecretUri=${secretsUri}/graph-client-secret)'
    }

var graphHomeSettings = empty(graphClientId) || empty(graphHomeTenantId)
  ? {}
  : {
      Graph__homeTenantId: graphHomeTenantId
    }

// The distributor connector belongs to one provider; without it that provider's changes become purchase
// requests. Both ids or neither: config.ts refuses a client id without its owning provider (and the
// reverse), so a half-set pair fails the deployment here rather than every invocation of the app.
var distributorSettings = empty(distributorClientId) && empty(distributorProviderId)
  ? {}
  : !empty(distributorClientId) && !empty(distributorProviderId)
      ? {
          Distributor__clientId: distributorClientId
          Distributor__clientSecret: '@Microsoft.KeyVault(SecretUri=${secretsUri}/distributor-client-secret)'
          Distributor__providerId: distributorProviderId
        }
      : fail('Set distributorClientId and distributorProviderId together (DISTRIBUTOR_CLIENT_ID, DISTRIBUTOR_PROVIDER_ID), or neither.')

var partnerCenterSettings = empty(partnerCenterClientId)
  ? {}
  : {
      PartnerCenter__tenantId: partnerCenterTenantId
      PartnerCenter__clientId: partnerCenterClientId
      PartnerCenter__clientSecret: '@Microsoft.KeyVault(SecretUri=${secretsUri}/partner-center-client-secret)'
    }

// "Sign in with Microsoft" in the ops console: its SPA registration and the delegated scope, together.
var consoleSettings = empty(consoleEntraClientId) && empty(consoleEntraScope)
  ? {}
  : !empty(consoleEntraClientId) && !empty(consoleEntraScope)
      ? {
          Console__entraClientId: consoleEntraClientId
          Console__entraScope: consoleEntraScope
        }
      : fail('Set consoleEntraClientId and consoleEntraScope together (CONSOLE_ENTRA_CLIENT_ID, CONSOLE_ENTRA_SCOPE), or neither.')

// config.ts refuses empty values, so the Partner Center connector's owner is set only when named.
var connectorOwnerSettings = empty(partnerCenterProviderId)
  ? {}
  : { PartnerCenter__providerId: partnerCenterProviderId }

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName }) // azd deploy finds the app by this tag
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: appServicePlanId
    httpsOnly: true
    // Key Vault references resolve with the user-assigned identity (the default would be a system identity).
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentStorageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }

  // Flex Consumption takes the runtime from functionAppConfig: no FUNCTIONS_WORKER_RUNTIME here.
  resource appSettings 'config' = {
    name: 'appsettings'
    properties: union(
      baseSettings,
      graphSettings,
      graphHomeSettings,
      partnerCenterSettings,
      distributorSettings,
      consoleSettings,
      connectorOwnerSettings
    )
  }
}

output SERVICE_API_NAME string = functionApp.name
output SERVICE_API_URI string = 'https://${functionApp.properties.defaultHostName}'
