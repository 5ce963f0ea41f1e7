/**
 * The built agent as a separate process, started as an operator would start it (no
 * UV_THREADPOOL_SIZE: it relaunches itself behind a front, agent/relaunch.ts), on an embedded
 * Azurite and a data directory under `root`. Each call of the returned factory is another
 * process on the same config and data directory.
 */
import { join } from "node:path";
import { AgentProcess, writeAgentConfig } from "../../src/staging/agent-process.js";
import { OPERATOR_TOKEN, stationLocation } from "./agent.js";
import { freePort } from "./azurite.js";

export async function relaunchingAgent(root: string): Promise<() => AgentProcess> {
  const apiPort = await freePort();
  const config = writeAgentConfig({
    root,
    apiPort,
    tokens: [{ name: "op", token: OPERATOR_TOKEN, role: "operator" }],
    station: { location: stationLocation },
    storage: { mode: "embedded", host: "127.0.0.1", port: await freePort() },
  });
  return () =>
    new AgentProcess({
      config,
      url: `http://127.0.0.1:${apiPort}`,
      operatorToken: OPERATOR_TOKEN,
      mountRoot: join(root, "mnt"),
      env: { UV_THREADPOOL_SIZE: "" },
    });
}
