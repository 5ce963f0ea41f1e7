/**
 * For vitest's `expect.poll(fn, UNTIL_HANG)` and `vi.waitFor(fn, UNTIL_HANG)`: poll a condition
 * instead of sleeping and then asserting. The deadline is generous, so only a hang reaches it,
 * even on a loaded 2-core CI machine.
 */
export const UNTIL_HANG = { timeout: 120_000, interval: 100 } as const;
