/**
 * Prints the plain closing line CI reads ("N passed, N failed, N skipped"); vitest's own is not on
 * its list. A test that never ran because a beforeAll of its suite (or file) failed counts as
 * failed, not skipped: every staged suite sets up in beforeAll; a suite whose afterAll failed after
 * its tests passed counts one failure. test/ci/summary-reporter.test.ts.
 */
import type { Reporter, TestCase, TestModule, TestSuite } from "vitest/node";

/** True when the test's suite, an enclosing one or its file has errors of its own (a failed hook). */
function setupFailed(t: TestCase): boolean {
  for (let s: TestSuite | TestModule = t.parent; ; s = s.parent) {
    if (s.errors().length > 0) return true;
    if (s.type === "module") return false;
  }
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === "passed") passed++;
        else if (state === "failed" || setupFailed(t)) failed++;
        else skipped++;
      }
      // A suite or file whose own hook failed after its tests passed (an afterAll: a cleanup that
      // could not unmount, say): one failure, or the line would say 0 failed while the run fails.
      for (const s of [m, ...m.children.allSuites()]) {
        if (s.errors().length === 0) continue;
        const tests = [...s.children.allTests()];
        if (tests.length > 0 && tests.every((t) => t.result().state === "passed")) failed++;
      }
      // A file that failed as it loaded: no test collected, one failure.
      if (m.state() === "failed" && [...m.children.allTests()].length === 0) failed++;
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
