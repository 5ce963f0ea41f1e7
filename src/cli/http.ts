/** A minimal HTTP(S) request for the CLI; `ca` trusts a station's self-signed certificate. */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface HttpResult {
  status: number;
  text: string;
}

export function request(
  url: string,
  opts: { method: string; headers: Record<string, string>; body?: string; ca?: Buffer },
): Promise<HttpResult> {
  const u = new URL(url);
  const send = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      u,
      { method: opts.method, headers: opts.headers, ...(opts.ca ? { ca: opts.ca } : {}), timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out after 30 s")));
    req.on("error", reject);
    req.end(opts.body);
  });
}
