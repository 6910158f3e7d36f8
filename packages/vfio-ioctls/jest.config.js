/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  // test/guest needs the real kernel: it runs in the QEMU guest (pnpm test:guest), not here.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/guest/'],
  testTimeout: 60000,
  // finalizers.test.ts first: see test/sequencer.js.
  testSequencer: '<rootDir>/test/sequencer.js',
};
