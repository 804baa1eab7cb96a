// Key Vault for the app's few real secrets (Graph, Partner Center, relay signing key). The app reads them
// through Key Vault references in its app settings; nothing here writes secret values (see infra/README.md).
param name string
param location string = resourceGroup().location
param tags object = {}
param purgeProtection bool = false

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true // access by role assignment (rbac.bicep), no access policies
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // Purge protection cannot be turned off once on, so it is only sent when asked for.
    enablePurgeProtection: purgeProtection ? true : null
    publicNetworkAccess: 'Enabled' // the Flex app has no VNet integration yet
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
