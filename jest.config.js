/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: { ignoreCodes: [151002] } }],
  },
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testMatch: ['<rootDir>/test/**/*.spec.ts'],
  // test/crash/ (child processes killed, servers restarted: minutes on PGlite) runs with
  // `npm run test:crash`, which CI runs on PostgreSQL and on PGlite.
  testPathIgnorePatterns: process.env.CRASH_TESTS ? ['/node_modules/'] : ['/node_modules/', '<rootDir>/test/crash/'],
  globalSetup: '<rootDir>/test/harness/global-setup.mjs',
  globalTeardown: '<rootDir>/test/harness/global-teardown.mjs',
  testTimeout: 60_000,
  // CI machines have 2 cores; the broker runs beside the workers.
  maxWorkers: 2,
};
