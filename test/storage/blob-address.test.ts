/**
 * Blob paths are parsed into container and name before any URL exists, and the URL a client will
 * send is built by us and checked: no spelling of a name can move a write to another container.
 */
import { AnonymousCredential, ContainerClient, RestError } from "@azure/storage-blob";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { StationError } from "../../src/errors.js";
import { checkBlobPath, checkBlobPrefix } from "../../src/formats/names.js";
import { credentialRefusal, JobStorage } from "../../src/storage/blob-access.js";
import { assertConfined, blobUrl, encodeBlobName } from "../../src/storage/blob-address.js";

const AZURITE = "http://127.0.0.1:10000/stationacct";
const AZURE = "https://stationacct.blob.core.windows.net";
const storageFor = (
  template: string,
  credential: ConstructorParameters<typeof JobStorage>[0]["credential"],
) =>
  new JobStorage({
    endpoint: { template },
    storageAccountId:
      "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stationacct",
    credential,
  });
const KEY = Buffer.from("not-a-real-key-but-long-enough-0123456789").toString("base64");

describe("checkBlobPath: good paths", () => {
  it.each([
    ["c1c/a", "c1c", "a"],
    ["$root/a.bmp", "$root", "a.bmp"],
    ["$web/index.html", "$web", "index.html"],
    ["abc/dir/file name.txt", "abc", "dir/file name.txt"],
    ["a-b/x", "a-b", "x"],
    ["pictures/.hidden", "pictures", ".hidden"],
    ["pictures/a..b/..c", "pictures", "a..b/..c"],
    ["docs/été/naïve 日本.txt", "docs", "été/naïve 日本.txt"],
    ["docs/cafe\u0301.txt", "docs", "cafe\u0301.txt"], // NFD: kept exactly, not normalised
    ["docs/q?x#y&z=1+2;'(!)*", "docs", "q?x#y&z=1+2;'(!)*"],
    ["docs/😀 emoji", "docs", "😀 emoji"],
    [`c1c/${"x".repeat(1024)}`, "c1c", "x".repeat(1024)],
    [`c1c/${Array(254).fill("s").join("/")}`, "c1c", Array(254).fill("s").join("/")],
    [`${"a".repeat(63)}/x`, "a".repeat(63), "x"],
  ])("accepts %j", (path, container, name) => {
    expect(checkBlobPath(path)).toEqual({ ok: true, container, name });
  });
});

describe("checkBlobPath: hostile or invalid paths are refused with a reason", () => {
  it.each([
    ["mycontainer/../other-container/x", /'\.\.' path segment/],
    ["mycontainer/a/../../other/x", /'\.\.' path segment/],
    ["mycontainer/./x", /'\.' path segment/],
    ["mycontainer/..", /'\.\.' path segment/],
    ["mycontainer/a/...", /'\.\.\.' path segment/],
    ["mycontainer/\uFF0E\uFF0E/other/x", /path segment/], // full-width dots fold to '..'
    ["mycontainer/%2e%2e/other/x", /'%'/],
    ["mycontainer/%2E%2E%2Fother%2Fx", /'%'/],
    ["mycontainer/a%00b", /'%'/],
    ["mycontainer/..\\other-container\\x", /backslash/],
    ["mycontainer/a\\b", /backslash/],
    ["mycontainer/a//b", /empty path segment/],
    ["mycontainer//x", /empty path segment/],
    ["mycontainer/a/", /empty path segment/],
    ["mycontainer/name.", /ends with a dot/],
    ["mycontainer/dir./x", /ends with a dot/],
    ["mycontainer/a\u0000b", /control character/],
    ["mycontainer/a\tb", /control character/],
    ["mycontainer/a\nb", /control character/],
    ["mycontainer/a\u007fb", /control character/],
    ["mycontainer/a\u0085b", /control character/],
    ["mycontainer/a\ud800b", /UTF-8/],
    ["mycontainer/a\uffffb", /copy log/],
    [`mycontainer/${"x".repeat(1025)}`, /1 to 1024/],
    [`mycontainer/${Array(255).fill("s").join("/")}`, /254/],
    ["$root/a/b", /root container/],
    ["$logs/x", /Storage Analytics/],
    ["My-Container/x", /not a valid container name/],
    ["ab/x", /not a valid container name/],
    [`${"a".repeat(64)}/x`, /not a valid container name/],
    ["ab--c/x", /not a valid container name/],
    ["-abc/x", /not a valid container name/],
    ["abc-/x", /not a valid container name/],
    ["a.b.c/x", /not a valid container name/],
    ["$other/x", /not a valid container name/],
    ["..%2f../x", /not a valid container name/],
    ["abc/", /1 to 1024/],
    ["abc", /starts with the container name/],
    ["/abc/x", /starts with the container name/],
  ])("refuses %j", (path, reason) => {
    const r = checkBlobPath(path);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it("reads $logs when exporting, never writes it", () => {
    expect(checkBlobPath("$logs/blob/2026/x.log", "read").ok).toBe(true);
    expect(checkBlobPath("$logs/blob/2026/x.log", "write").ok).toBe(false);
  });
});

describe("checkBlobPrefix (export)", () => {
  it.each([
    ["/", { containerPrefix: "", namePrefix: "" }],
    ["/book", { containerPrefix: "book", namePrefix: "" }],
    ["/bob/", { container: "bob", containerPrefix: "bob", namePrefix: "" }],
    ["/music/love", { container: "music", containerPrefix: "music", namePrefix: "love" }],
    ["/$root/", { container: "$root", containerPrefix: "$root", namePrefix: "" }],
    ["/pics/image/", { container: "pics", containerPrefix: "pics", namePrefix: "image/" }],
    ["/pics/a/ima.", { container: "pics", containerPrefix: "pics", namePrefix: "a/ima." }],
    ["/pics/.", { container: "pics", containerPrefix: "pics", namePrefix: "." }],
  ])("accepts %j", (prefix, parsed) => {
    expect(checkBlobPrefix(prefix)).toEqual({ ok: true, prefix: parsed });
  });
  it.each([
    ["music/love", /starts with '\/'/],
    ["/Music", /cannot begin a container name/],
    ["/a--b", /cannot begin a container name/],
    ["/ab/x", /not a valid container name/],
    ["/pics/../other/", /'\.\.' path segment/],
    ["/pics/./x", /'\.' path segment/],
    ["/pics//x", /empty path segment/],
    ["/pics/a//", /empty path segment/],
    ["/pics/%2e%2e/", /'%'/],
    ["/pics/a\\b", /backslash/],
    ["/pics/a\u0001", /control character/],
    ["/$root/a/", /root container/],
  ])("refuses %j", (prefix, reason) => {
    const r = checkBlobPrefix(prefix);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });
});

describe("blob URLs", () => {
  it("the SDK's own getBlockBlobClient resolves dot segments into another container (why we build URLs ourselves)", () => {
    const c = new ContainerClient(`${AZURITE}/mycontainer`, new AnonymousCredential());
    expect(new URL(c.getBlockBlobClient("../other-container/x").url).pathname).toBe(
      "/stationacct/other-container/x",
    );
  });

  it.each([
    [AZURITE, "mycontainer", "a b/ü?#&x", "/stationacct/mycontainer/a%20b/%C3%BC%3F%23%26x"],
    [AZURE, "mycontainer", "it's (1)!*", "/mycontainer/it%27s%20%281%29%21%2A"],
    [AZURE, "$root", "logo.bmp", "/$root/logo.bmp"],
  ])("%s + %s/%s → path %s", (base, container, name, path) => {
    expect(new URL(blobUrl(base, { container, name })).pathname).toBe(path);
  });

  it("blobUrl refuses an address that breaks the rules instead of building it", () => {
    expect(() => blobUrl(AZURITE, { container: "mycontainer", name: "../other/x" })).toThrow(StationError);
    expect(() => blobUrl(AZURITE, { container: "Other", name: "x" })).toThrow(/container name/);
  });

  it("assertConfined: the URL must name exactly the container and blob", () => {
    const a = { container: "mycontainer", name: "dir/x.txt" };
    expect(() => assertConfined(`${AZURITE}/mycontainer/dir/x.txt`, AZURITE, a)).not.toThrow();
    expect(() => assertConfined(`${AZURITE}/mycontainer/dir%2Fx.txt?sv=1`, AZURITE, a)).not.toThrow();
    for (const url of [
      `${AZURITE}/other-container/x`,
      `${AZURITE}/mycontainer/dir/y.txt`,
      `${AZURITE}/mycontainerx/dir/x.txt`,
      "http://127.0.0.1:10000/otheracct/mycontainer/dir/x.txt",
      "http://127.0.0.2:10000/stationacct/mycontainer/dir/x.txt",
      `${AZURITE}/mycontainer/%E0%A4%A`,
    ])
      expect(() => assertConfined(url, AZURITE, a), url).toThrow(/Refusing to send/);
  });

  it("JobStorage builds its clients from those URLs (key and SAS) and keeps the SAS inside its container", () => {
    const key = storageFor("http://127.0.0.1:10000/{account}", { kind: "accountKey", key: KEY });
    expect(new URL(key.block("mycontainer", "a/b c.txt").url).pathname).toBe(
      "/stationacct/mycontainer/a/b%20c.txt",
    );
    expect(new URL(key.page("mycontainer", "d.vhd").url).pathname).toBe("/stationacct/mycontainer/d.vhd");
    expect(() => key.block("mycontainer", "../other-container/x")).toThrow(StationError);

    const sas = storageFor("https://{account}.blob.core.windows.net", {
      kind: "containerSas",
      container: "mycontainer",
      token: "sv=2022-11-02&sr=c&sp=rwdl&sig=c2VjcmV0",
    });
    const u = new URL(sas.blob("mycontainer", "x/y").url);
    expect(u.pathname).toBe("/mycontainer/x/y");
    expect(u.searchParams.get("sp")).toBe("rwdl");
    expect(() => sas.block("other-container", "x")).toThrow(/outside the SAS container/);
    expect(sas.publicUrl("mycontainer", "x/y")).toBe(
      "https://stationacct.blob.core.windows.net/mycontainer/x/y",
    );
    expect(sas.credentialProblem).toBeUndefined();
    expect(
      storageFor(AZURITE, { kind: "containerSas", container: "../x", token: "sig=a" }).credentialProblem,
    ).toMatch(/not a valid container name/);
  });

  it("property: any accepted path gives a URL whose first segment is its container and which decodes back to its name", () => {
    const piece = fc.constantFrom(
      "a",
      "Z",
      "0",
      ".",
      "..",
      "/",
      "//",
      "\\",
      "%",
      "%2e",
      "%2F",
      " ",
      "?",
      "#",
      "&",
      "+",
      ";",
      "'",
      "é",
      "e\u0301",
      "\uFF0E",
      "日本",
      "😀",
      "\ud800",
      "\u0000",
      "\t",
      "~",
      "@",
      ":",
      "$",
    );
    const name = fc.array(piece, { minLength: 1, maxLength: 12 }).map((p) => p.join(""));
    const container = fc.constantFrom("mycontainer", "other-container", "$root", "a1", "Bad", "abc");
    const key = storageFor("http://127.0.0.1:10000/{account}", { kind: "accountKey", key: KEY });
    let accepted = 0;
    fc.assert(
      fc.property(container, name, fc.constantFrom(AZURITE, AZURE), (c, n, base) => {
        const parsed = checkBlobPath(`${c}/${n}`);
        if (!parsed.ok) return;
        accepted++;
        for (const url of [blobUrl(base, parsed), key.block(parsed.container, parsed.name).url]) {
          const root = url.startsWith(AZURE) ? AZURE : AZURITE;
          const u = new URL(url);
          const basePath = new URL(root).pathname.replace(/\/$/, "");
          const segments = u.pathname
            .slice(basePath.length + 1)
            .split("/")
            .map(decodeURIComponent);
          expect(segments[0]).toBe(parsed.container);
          expect(segments.slice(1).join("/")).toBe(parsed.name);
          expect(parsed.container).toBe(c);
          expect(`${parsed.container}/${parsed.name}`).toBe(`${c}/${n}`);
        }
        expect(encodeBlobName(parsed.name)).not.toMatch(/(^|\/)\.{1,2}(\/|$)|\\/);
      }),
      { numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(100); // the generator does reach accepted names
  });
});

describe("credentialRefusal", () => {
  const err = (statusCode: number, code?: string) =>
    new RestError("Server failed to authenticate the request.", { statusCode, ...(code ? { code } : {}) });
  it.each([
    [403, "AuthenticationFailed", false, /account key.*403 AuthenticationFailed/],
    [
      403,
      "AuthorizationPermissionMismatch",
      true,
      /SAS lacks a permission.*403 AuthorizationPermissionMismatch/,
    ],
    [403, "AuthorizationResourceTypeMismatch", true, /does not grant access/],
    [403, "AuthorizationFailure", true, /expired, revoked, signed for another container/],
    [401, undefined, false, /401 Forbidden/],
    [404, "ContainerNotFound", true, /a SAS cannot create it/],
  ])("%d %s (SAS: %s) is a refusal of the credential", (status, code, sas, cause) => {
    expect(credentialRefusal(err(status, code), sas)?.cause).toMatch(cause);
  });
  it.each([
    [404, "ContainerNotFound", false],
    [404, "BlobNotFound", true],
    [409, "BlobAlreadyExists", false],
    [500, "InternalError", false],
    [503, "ServerBusy", true],
  ])("%d %s (SAS: %s) is not", (status, code, sas) => {
    expect(credentialRefusal(err(status, code), sas)).toBeUndefined();
  });
});
