/**
 * A stop signal delivered twice at once (pkill -f, killall: the relaunch front passes it on and
 * the agent gets it too) stops the agent gracefully; only a second request later forces the exit.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DUPLICATE_SIGNAL_MS, StopSignals } from "../../agent/stop-signals.js";
import { childrenOf } from "../../src/staging/agent-process.js";
import { relaunchingAgent } from "../support/relaunching-agent.js";
import { useTempDir } from "../support/tmp.js";

const tmp = useTempDir();
const running: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const end of running.splice(0)) await end();
});

describe("stop signals", () => {
  it("the first stops, the same one again within a second is the same request, anything later forces", () => {
    let now = 1_000;
    const s = new StopSignals(() => now);
    expect(s.requested).toBeUndefined();
    expect(s.see("SIGTERM")).toBe("stop");
    expect(s.requested).toBe("SIGTERM");
    now += 5;
    expect(s.see("SIGTERM")).toBe("again");
    expect(s.see("SIGINT")).toBe("force"); // another signal is another request
    now += DUPLICATE_SIGNAL_MS;
    expect(s.see("SIGTERM")).toBe("force");
  });

  it("SIGTERM sent to a relaunched agent and to its front together: a graceful stop, not a forced one", async () => {
    const agent = (await relaunchingAgent(tmp()))();
    running.push(() => agent.cleanup().catch(() => undefined));
    agent.start();
    await agent.ready(30_000);
    const [child] = childrenOf(agent.pid);
    expect(child, "the relaunched agent").toBeGreaterThan(0);
    process.kill(child!, "SIGTERM"); // what pkill -f does: the agent, and its front below
    const exit = await agent.signal("SIGTERM");
    expect(agent.output).toMatch(/the same signal again at once/);
    expect(agent.output).not.toMatch(/second signal: forcing the exit/);
    expect(exit.code === 0 || exit.signal === "SIGTERM", JSON.stringify(exit)).toBe(true);
  });
});
