// Service Bus: the app's work queues, the relay's reply queue, and one command queue per on-prem agent site.
param name string
param location string = resourceGroup().location
param tags object = {}

@description('Agent site ids; each gets queue agent-site-<siteId> (see shared/relay-protocol/schema.ts).')
param agentSites string[] = []

// Work queues the Functions app sends to and consumes (trigger connection ServiceBusConnection).
var workQueueNames = [
  'directory-work'
  'licence-work'
  'onboarding-work' // onboarding reads (functions/queue/onboarding.ts), resumable by the job's lease
]

// Same delivery semantics everywhere: the app sets messageId for idempotent sends (cmd-<id>, reply-<id>), so
// duplicate detection drops retried sends; poison messages go to the dead-letter queue after 10 tries.
var queueProperties = {
  lockDuration: 'PT1M'
  maxDeliveryCount: 10
  requiresDuplicateDetection: true
  duplicateDetectionHistoryTimeWindow: 'PT10M'
  deadLetteringOnMessageExpiration: true
  defaultMessageTimeToLive: 'P14D'
  requiresSession: false
  enablePartitioning: false
}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard' // queues with duplicate detection need Standard or above
    tier: 'Standard'
  }
  properties: {
    minimumTlsVersion: '1.2'
    // Local (SAS) auth stays on for one reason only: the on-prem relay agents run on customers' servers,
    // outside Entra, and authenticate with per-site SAS rules scoped to their own queues (below). The
    // Functions app never uses SAS: it connects with its managed identity (Azure Service Bus Data Owner).
    disableLocalAuth: false
  }
}

resource workQueues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [
  for queueName in workQueueNames: {
    parent: namespace
    name: queueName
    properties: queueProperties
  }
]

// Agents → cloud: replies and heartbeats from every site, consumed by the app.
resource repliesQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: 'agent-replies'
  properties: queueProperties
}

// Cloud → agent: one command queue per site. A signed command lives at most 24 h (agent/verifier.ts), so an
// older one is dead-lettered where the cloud can see it instead of being delivered only to be refused.
resource siteQueues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [
  for siteId in agentSites: {
    parent: namespace
    name: 'agent-site-${siteId}'
    properties: union(queueProperties, { defaultMessageTimeToLive: 'P1D' })
  }
]

// A site's agent may only receive its own commands...
resource siteListenRules 'Microsoft.ServiceBus/namespaces/queues/authorizationRules@2024-01-01' = [
  for (siteId, i) in agentSites: {
    parent: siteQueues[i]
    name: 'site-${siteId}-listen'
    properties: {
      rights: ['Listen']
    }
  }
]

// ...and may only send replies/heartbeats (never read other sites' replies). Service Bus caps SAS rules at
// 12 per entity, hence the 12-site limit on agentSites. One at a time: they all update the same queue.
@batchSize(1)
resource siteSendRules 'Microsoft.ServiceBus/namespaces/queues/authorizationRules@2024-01-01' = [
  for siteId in agentSites: {
    parent: repliesQueue
    name: 'site-${siteId}-send'
    properties: {
      rights: ['Send']
    }
  }
]

output name string = namespace.name
// serviceBusEndpoint is https://<name>.servicebus.windows.net:443/ (suffix differs in sovereign clouds).
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
output agentSiteQueues string[] = [for siteId in agentSites: 'agent-site-${siteId}']
