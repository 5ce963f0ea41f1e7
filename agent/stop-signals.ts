/**
 * What a stop signal means, by what came before it. The first stops the agent gracefully; a
 * second forces the exit (an operator who will not wait). But the same signal again within a
 * second is one request delivered twice: `pkill -f`, `killall` or a terminal's process group
 * reach both a relaunch front (relaunch.ts), which passes the signal on, and the agent itself.
 * Forcing the exit then would skip the graceful stop nobody asked to skip.
 */
export const DUPLICATE_SIGNAL_MS = 1000;

export type StopMeaning = "stop" | "again" | "force";

export class StopSignals {
  private first: { signal: string; at: number } | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  get requested(): string | undefined {
    return this.first?.signal;
  }

  see(signal: string): StopMeaning {
    const at = this.now();
    if (!this.first) {
      this.first = { signal, at };
      return "stop";
    }
    return signal === this.first.signal && at - this.first.at < DUPLICATE_SIGNAL_MS ? "again" : "force";
  }
}
