import { writeSync } from 'node:fs';
import type { Reporter, SerializedError, TestModule } from 'vitest/node';

/**
 * Ends the test output with one plain line, `N passed, N failed, N skipped`, for CI logs. An
 * unhandled error (an uncaught exception or rejection, or vitest's own `Timeout calling ...`)
 * fails the run as vitest's exit code does, so it counts as a failure here too.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      if (mod.state() === 'failed' && [...mod.children.allTests()].length === 0) failed++;
    }
    const unhandled = unhandledErrors.length;
    const note = unhandled > 0 ? ` (${unhandled} unhandled error${unhandled === 1 ? '' : 's'} among the failures)` : '';
    // Printed at exit so that it comes after the default reporter's summary.
    const line = `\n${passed} passed, ${failed + unhandled} failed, ${skipped} skipped${note}\n`;
    process.once('exit', () => writeSync(1, line));
  }
}
