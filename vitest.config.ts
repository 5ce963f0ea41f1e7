import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // An unhandled rejection anywhere fails the run (test/service/process-net.test.ts proves it).
    dangerouslyIgnoreUnhandledErrors: false,
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
