/**
 * Requests sent with the path exactly as written. fetch/undici and fastify's `inject` parse the
 * URL first and so resolve `..` and `.` segments (inject turned `/x/../station/v1/attached` into
 * `/station/v1/attached`); a hostile client sends the bytes it likes, and so do these.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface RawResponse {
  status: number;
  body: string;
}

export function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  opts: { token?: string; body?: string; ca?: Buffer } = {},
): Promise<RawResponse> {
  const u = new URL(baseUrl);
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(Buffer.byteLength(opts.body));
  }
  const request = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers,
        agent: false,
        ...(opts.ca ? { ca: opts.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        // An event stream never ends: its status and its first chunk are the answer.
        if (String(res.headers["content-type"]).startsWith("text/event-stream")) {
          res.once("data", (c: Buffer) => {
            resolve({ status: res.statusCode ?? 0, body: c.toString("utf8") });
            req.destroy();
          });
          return;
        }
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}
