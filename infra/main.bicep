// atria-m365 on Azure: a Flex Consumption Function App that reaches Storage, Service Bus, Key Vault and
// Application Insights with one user-assigned managed identity and no keys of its own.
// Deployed by `azd up` (see infra/README.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Region for all resources. It must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Entra tenant whose tokens callers present to the API. Empty = the tenant of this subscription.')
param entraTenantId string = ''

@description('Expected audience (aud) of caller tokens, e.g. the API app registration\'s Application ID URI.')
param entraAudience string = ''

@description('Client id of the partner\'s multi-tenant Entra app used for Graph. Empty = Graph not configured yet.')
param graphClientId string = ''

@description('The partner tenant where that app is registered (enables idempotent Entra creates: users we create carry our key in a directory extension of the app).')
param graphHomeTenantId string = ''

@description('The provider whose Partner Center account the Partner Center credentials are (its 1-Tier connector).')
param partnerCenterProviderId string = ''

@description('Distributor (2-Tier, Pax8 shape) connector client id; its secret is the Key Vault secret distributor-client-secret. Empty = no distributor connector.')
param distributorClientId string = ''

@description('The provider whose distributor account that is.')
param distributorProviderId string = ''

@description('Partner Center (1-Tier CSP) tenant id. Leave both Partner Center ids empty for distributor-only providers.')
param partnerCenterTenantId string = ''

@description('Partner Center app registration client id.')
param partnerCenterClientId string = ''

@description('The ops console\'s single-page app registration (Entra sign-in for engineers). Empty = API keys only.')
param consoleEntraClientId string = ''

@description('The delegated scope the console asks for, e.g. api://atria-m365/Atria.Console (with consoleEntraClientId).')
param consoleEntraScope string = ''

@description('On-prem relay agent sites (lower-case letters, digits, inner hyphens, as siteIdSchema). Each gets queue agent-site-<siteId> and its own SAS rules. At most 12: Service Bus allows 12 SAS rules per entity and every site needs one on agent-replies.')
@maxLength(12)
param agentSites string[] = []

@description('Upper bound of Flex Consumption instances; it also caps how hard bursts of queue work can hit Graph and Partner Center throttling.')
param maximumInstanceCount int = 40

@description('Turn on Key Vault purge protection (recommended in production; it stops `azd down --purge` from removing the vault).')
param keyVaultPurgeProtection bool = false

@description('Object id of whoever runs the deployment; gets Key Vault Secrets Officer so they can put the secrets in. Empty = none.')
param principalId string = deployer().objectId

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

var functionAppName = 'func-api-${resourceToken}'
// Flex Consumption deploys the app package from a blob container; one per app, named after it.
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

// The one identity the app uses for everything (Storage, Service Bus, Key Vault references, App Insights).
// User-assigned so role assignments exist before the app does and survive re-creating it.
module apiIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

// Host storage (triggers, timers, deployment package) and the app's Table storage state.
module storage 'br/public:avm/res/storage/storage-account:0.8.3' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // Entra ID only: the app and the Functions host use the managed identity
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled' // no VNet integration yet; access is still Entra-only
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [{ name: deploymentStorageContainerName }]
    }
  }
}

module serviceBus 'app/servicebus.bicep' = {
  name: 'serviceBus'
  scope: rg
  params: {
    name: 'sb-${resourceToken}'
    location: location
    tags: tags
    agentSites: agentSites
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyVault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    purgeProtection: keyVaultPurgeProtection
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  name: '${uniqueString(deployment().name, location)}-loganalytics'
  scope: rg
  params: {
    name: 'log-${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30
  }
}

module monitoring 'br/public:avm/res/insights/component:0.6.0' = {
  name: '${uniqueString(deployment().name, location)}-appinsights'
  scope: rg
  params: {
    name: 'appi-${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true // telemetry is sent with the identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING)
  }
}

// Flex Consumption: per-execution billing, scale to zero, identity-based deployment storage.
module appServicePlan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: 'plan-${resourceToken}'
    location: location
    tags: tags
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true // Linux
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    appServicePlanId: appServicePlan.outputs.resourceId
    storageAccountName: storage.outputs.name
    deploymentStorageContainerName: deploymentStorageContainerName
    applicationInsightsName: monitoring.outputs.name
    identityId: apiIdentity.outputs.resourceId
    identityClientId: apiIdentity.outputs.clientId
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    keyVaultUri: keyVault.outputs.uri
    maximumInstanceCount: maximumInstanceCount
    entraTenantId: empty(entraTenantId) ? tenant().tenantId : entraTenantId
    entraAudience: entraAudience
    graphClientId: graphClientId
    graphHomeTenantId: graphHomeTenantId
    partnerCenterProviderId: partnerCenterProviderId
    distributorClientId: distributorClientId
    distributorProviderId: distributorProviderId
    partnerCenterTenantId: partnerCenterTenantId
    partnerCenterClientId: partnerCenterClientId
    consoleEntraClientId: consoleEntraClientId
    consoleEntraScope: consoleEntraScope
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.name
    managedIdentityPrincipalId: apiIdentity.outputs.principalId
    deployerPrincipalId: principalId
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = api.outputs.SERVICE_API_NAME
output AZURE_FUNCTION_NAME string = api.outputs.SERVICE_API_NAME
output AZURE_FUNCTION_URI string = api.outputs.SERVICE_API_URI
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = apiIdentity.outputs.clientId
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.name
output SERVICE_BUS_FULLY_QUALIFIED_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output AGENT_SITE_QUEUES string[] = serviceBus.outputs.agentSiteQueues
