/**
 * Liveness, readiness and the Prometheus scrape route.
 *
 * Access: `/healthz` and `/readyz` are public (a probe carries no token; they reveal only check
 * names and whether each passes, never a job, a drive or a secret). `/metrics` needs an operator
 * token (Prometheus: `authorization: { credentials_file: ... }`): its labels name jobs and drives.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { FastifyInstance } from "fastify";
import { scrubSecrets } from "../secrets.js";

/** One thing the station needs to do its work; `check` throws (with the cause) when it cannot. */
export interface ReadinessCheck {
  name: string;
  check(signal: AbortSignal): Promise<void>;
}

export interface HealthDeps {
  readiness: ReadinessCheck[];
  /** Absent: no /metrics route. */
  metrics?: { exposition(): Promise<{ contentType: string; text: string }> };
  checkTimeoutMs?: number;
}

export function registerHealth(app: FastifyInstance, deps: HealthDeps): void {
  const started = Date.now();
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  app.addHook("onClose", async () => loopDelay.disable());

  // Answering at all is the proof: the process runs and its event loop turns.
  app.get("/healthz", { config: { access: "public" } }, async () => ({
    status: "ok",
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
    eventLoopDelayP99Ms: Number((loopDelay.percentile(99) / 1e6).toFixed(1)),
  }));

  app.get("/readyz", { config: { access: "public" } }, async (_req, reply) => {
    const timeoutMs = deps.checkTimeoutMs ?? 3000;
    const checks = await Promise.all(
      [{ name: "api", check: async () => undefined } as ReadinessCheck, ...deps.readiness].map(async (c) => {
        const signal = AbortSignal.timeout(timeoutMs);
        try {
          await Promise.race([
            c.check(signal),
            new Promise((_, reject) =>
              signal.addEventListener("abort", () => reject(new Error(`no answer within ${timeoutMs} ms`))),
            ),
          ]);
          return { name: c.name, ok: true };
        } catch (e) {
          return { name: c.name, ok: false, message: scrubSecrets((e as Error).message) };
        }
      }),
    );
    const ready = checks.every((c) => c.ok);
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not ready", checks });
  });

  const metrics = deps.metrics;
  if (metrics) {
    app.get("/metrics", { config: { access: "operator" } }, async (_req, reply) => {
      const { contentType, text } = await metrics.exposition();
      return reply.header("content-type", contentType).send(text);
    });
  }
}
