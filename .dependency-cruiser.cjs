/** Layer rules from shared/ARCHITECTURE.md: imports point downwards only. */
module.exports = {
  forbidden: [
    {
      name: 'core-never-imports-adapters',
      comment: 'domain, usecases and ports know nothing of SDKs or adapters',
      severity: 'error',
      from: { path: '^shared/(domain|usecases|ports)/' },
      to: { path: '^(shared/adapters|shared/composition|functions|dev|agent)/' },
    },
    {
      name: 'domain-is-pure',
      severity: 'error',
      from: { path: '^shared/domain/' },
      to: { path: '^shared/(usecases|ports)/' },
    },
    {
      name: 'core-imports-no-sdk',
      comment: 'SDK clients live only in adapters',
      severity: 'error',
      from: { path: '^shared/(domain|usecases|ports)/' },
      to: { path: 'node_modules/(@azure|@microsoft|ldapts|rhea)' },
    },
    {
      name: 'production-never-imports-dev',
      severity: 'error',
      from: { path: '^(functions|shared|agent)/' },
      to: { path: '^(dev|test)/' },
    },
    {
      name: 'shared-never-imports-functions',
      severity: 'error',
      from: { path: '^shared/' },
      to: { path: '^functions/' },
    },
    {
      name: 'no-circular',
      comment: 'type-only cycles (a definition naming its handler type) vanish at run time',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
  },
};
