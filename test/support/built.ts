import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..", "..");

/** Path to a compiled entry point; `npm test` builds first, a bare `vitest` run builds here (npm run build: tsc and the assets) if needed. */
export function built(relative: string): string {
  const file = resolve(ROOT, "dist", relative);
  if (!existsSync(file)) execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "inherit" });
  return file;
}
