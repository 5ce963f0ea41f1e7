/**
 * The browser tests' gate: Debian's chromium driven by playwright-core (never a downloaded
 * browser). In CI (CI=true) a missing chromium fails the suite loudly; elsewhere it skips and
 * says why.
 */
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function chromiumGate(suite: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  const why = `${CHROMIUM} is missing (Debian package: chromium; .ci/run installs it)`;
  if (process.env.CI) throw new Error(`Browser suite "${suite}" cannot run in CI: ${why}.`);
  console.warn(`SKIPPING browser suite "${suite}": ${why}.`);
  return false;
}

/** test-artifacts/ at the repository root (gitignored): screenshots a person looks at. */
export function artifactPath(name: string): string {
  const dir = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  return `${dir}${name}`;
}
