/**
 * Blob URLs that no normalisation can move to another container. The SDK's own
 * `containerClient.getBlobClient(name)` sets the name into a WHATWG URL path, which resolves
 * `..`, reads `\` as `/` and so can write `c/../other/x` into container `other`. Here every
 * segment is percent-encoded explicitly (dots stay dots only inside longer segments, which the
 * name rules guarantee), and the URL the client will really send is checked before any request.
 */
import { StationError } from "../errors.js";
import { type BlobAddress, checkBlobName, checkContainerName } from "../formats/names.js";

export type { BlobAddress } from "../formats/names.js";
export { checkBlobPath, checkBlobPrefix } from "../formats/names.js";

/** encodeURIComponent plus the RFC 3986 sub-delimiters it leaves alone. */
const encodeSegment = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** The blob name as a URL path: each '/'-separated segment percent-encoded. */
export const encodeBlobName = (name: string): string => name.split("/").map(encodeSegment).join("/");

/**
 * The blob's URL under `baseUrl` (`https://{account}.blob.core.windows.net` or, path-style,
 * `http://host:port/{account}`), with an optional query (a SAS token, without '?').
 * Throws when the address breaks the naming rules: callers parse before they build.
 */
export function blobUrl(baseUrl: string, a: BlobAddress, query = ""): string {
  const bad = checkContainerName(a.container, "read") ?? checkBlobName(a.name, a.container);
  if (bad) throw new StationError("InvalidRequestContent", `Blob ${a.container}/${a.name}: ${bad}`);
  const base = baseUrl.replace(/\/+$/, "");
  return `${base}/${a.container}/${encodeBlobName(a.name)}${query ? `?${query}` : ""}`;
}

/** The container's URL under `baseUrl`, with an optional query. */
export function containerUrl(baseUrl: string, container: string, query = ""): string {
  const bad = checkContainerName(container, "read");
  if (bad) throw new StationError("InvalidRequestContent", bad);
  return `${baseUrl.replace(/\/+$/, "")}/${container}${query ? `?${query}` : ""}`;
}

/**
 * The runtime guard: `url` (what a client will send) must address exactly `a` under `baseUrl`.
 * Its path must be the base path, then the container, then the name's segments, each decoding
 * back to the named one. Throws a StationError (never sends) when any layer rewrote it.
 */
export function assertConfined(url: string, baseUrl: string, a: BlobAddress): void {
  const fail = (why: string): never => {
    throw new StationError(
      "InternalError",
      `Refusing to send a request for ${a.container}/${a.name}: ${why}. Nothing was written.`,
      { target: `${a.container}/${a.name}` },
    );
  };
  const u = new URL(url);
  const base = new URL(baseUrl);
  if (u.origin !== base.origin) fail(`the URL's origin is ${u.origin}, not ${base.origin}`);
  const basePath = base.pathname.replace(/\/+$/, "");
  const path = u.pathname;
  const expected = `${basePath}/`;
  if (!path.startsWith(expected)) fail(`the URL path ${path} is not under ${expected}`);
  const segments = path.slice(expected.length).split("/");
  let decoded: string[] = [];
  try {
    decoded = segments.map((s) => decodeURIComponent(s));
  } catch {
    fail(`the URL path ${path} does not decode`);
  }
  if (decoded[0] !== a.container) fail(`the URL path ${path} names container '${decoded[0]}'`);
  if (decoded.slice(1).join("/") !== a.name) fail(`the URL path ${path} names another blob`);
}
