/**
 * The build's second step (after tsc): copies the run-time files tsc does not emit into dist/, so
 * the installed layout (README: `cp -r dist node_modules package.json config`) needs no src/.
 * test/staged/install.test.ts installs exactly that way and starts the agent.
 */
import { cpSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
/** Source directories the agent reads at run time, copied to the same place under dist/. */
const RUNTIME_ASSETS = ["src/api/console", "src/jobs/pg-migrations"];

for (const dir of RUNTIME_ASSETS) {
  const to = join(root, "dist", dir);
  rmSync(to, { recursive: true, force: true }); // a file removed from src leaves dist too
  cpSync(join(root, dir), to, { recursive: true });
}
