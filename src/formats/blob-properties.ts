/**
 * Metadata and properties files (reference §2): read for import with their hash checks, written
 * for export. The status strings are those of Metadata/@Status and Properties/@Status (§3.5.5-6).
 */
import { createHash } from "node:crypto";
import type { FileInfoStatus } from "./status.js";
import { parseXmlTree, XmlSyntaxError, escapeXml as x } from "./xml.js";

export type FileInfoResult<T> =
  | { ok: true; value: T }
  | { ok: false; status: FileInfoStatus; message: string };

export const md5Hex = (data: Buffer | string): string =>
  createHash("md5").update(data).digest("hex").toUpperCase();

/** Properties a customer may set on import; export files also carry Last-Modified, Etag and Content-Length. */
export const IMPORT_PROPERTIES = [
  "Content-Type",
  "Content-MD5",
  "Content-Encoding",
  "Content-Language",
  "Cache-Control",
] as const;
export const EXPORT_ONLY_PROPERTIES = ["Last-Modified", "Etag", "Content-Length"] as const;
export type PropertyName = (typeof IMPORT_PROPERTIES)[number] | (typeof EXPORT_ONLY_PROPERTIES)[number];
export type BlobProperties = Partial<Record<PropertyName, string>>;

// Blob metadata names must be valid C# identifiers (Set Blob Metadata), which are also XML names.
const METADATA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,255}$/;
const MAX_METADATA_BYTES = 8 * 1024;
/**
 * The largest metadata or properties file read at all. Metadata is capped at 8 KiB of names and
 * values (Set Blob Metadata) and properties are a handful of short headers; 64 KiB leaves room
 * for XML tags, whitespace and entities. A larger file is refused unread, so a huge (or sparse)
 * file cannot spend the agent's memory.
 */
export const MAX_FILE_INFO_BYTES = 64 * 1024;

function checkHash(data: Buffer, expectedHash: string, what: string): FileInfoResult<never> | undefined {
  const actual = md5Hex(data);
  if (actual !== expectedHash.trim().toUpperCase()) {
    return {
      ok: false,
      status: "Corrupted",
      message: `${what} has MD5 ${actual}, but the manifest says ${expectedHash}`,
    };
  }
  return undefined;
}

async function tree(data: Buffer, root: string, what: string) {
  try {
    const el = await parseXmlTree(data);
    if (el.name !== root)
      return {
        ok: false as const,
        status: "XmlReadFailed" as const,
        message: `${what}: the root element is ${el.name}, not ${root}`,
      };
    return { ok: true as const, el };
  } catch (e) {
    if (e instanceof XmlSyntaxError)
      return {
        ok: false as const,
        status: "XmlReadFailed" as const,
        message: `${what} is not well-formed XML: ${e.message}`,
      };
    throw e;
  }
}

/** Parses a metadata file after checking its MD5 against the manifest. */
export async function readMetadataFile(
  data: Buffer,
  expectedHash: string,
  what = "metadata file",
): Promise<FileInfoResult<Record<string, string>>> {
  const bad = checkHash(data, expectedHash, what);
  if (bad) return bad;
  const t = await tree(data, "Metadata", what);
  if (!t.ok) return t;
  const out: Record<string, string> = {};
  const seen = new Set<string>();
  let bytes = 0;
  for (const child of t.el.children) {
    if (!METADATA_NAME.test(child.name))
      return {
        ok: false,
        status: "XmlReadFailed",
        message: `${what}: '${child.name}' is not a valid metadata name (a C# identifier)`,
      };
    const key = child.name.toLowerCase();
    if (seen.has(key))
      return {
        ok: false,
        status: "XmlReadFailed",
        message: `${what}: metadata name '${child.name}' appears twice (names are case-insensitive)`,
      };
    // HTTP header values carry printable ASCII only.
    if (/[^\x20-\x7e\t]/.test(child.text))
      return {
        ok: false,
        status: "XmlReadFailed",
        message: `${what}: the value of '${child.name}' must be printable ASCII (it travels as an HTTP header)`,
      };
    seen.add(key);
    out[child.name] = child.text;
    bytes += child.name.length + child.text.length;
  }
  if (bytes > MAX_METADATA_BYTES)
    return {
      ok: false,
      status: "XmlReadFailed",
      message: `${what}: metadata is larger than ${MAX_METADATA_BYTES} bytes`,
    };
  return { ok: true, value: out };
}

/**
 * Parses a properties file after checking its MD5. On import, the export-only elements are
 * ignored (they describe a blob, they do not set one); unknown elements are an error.
 */
export async function readPropertiesFile(
  data: Buffer,
  expectedHash: string,
  kind: "import" | "export",
  what = "properties file",
): Promise<FileInfoResult<BlobProperties>> {
  const bad = checkHash(data, expectedHash, what);
  if (bad) return bad;
  const t = await tree(data, "Properties", what);
  if (!t.ok) return t;
  const out: BlobProperties = {};
  for (const child of t.el.children) {
    const name = child.name as PropertyName;
    const importable = (IMPORT_PROPERTIES as readonly string[]).includes(name);
    const exportOnly = (EXPORT_ONLY_PROPERTIES as readonly string[]).includes(name);
    if (!importable && !exportOnly)
      return {
        ok: false,
        status: "XmlReadFailed",
        message: `${what}: '${child.name}' is not a blob property (allowed: ${IMPORT_PROPERTIES.join(", ")})`,
      };
    if (name in out)
      return { ok: false, status: "XmlReadFailed", message: `${what}: '${name}' appears twice` };
    if (exportOnly && kind === "import") continue;
    const v = child.text.trim();
    if (name === "Content-MD5" && Buffer.from(v, "base64").length !== 16)
      return {
        ok: false,
        status: "XmlReadFailed",
        message: `${what}: Content-MD5 must be a Base64 MD5 (16 bytes)`,
      };
    out[name] = v;
  }
  return { ok: true, value: out };
}

export function writeMetadataFile(metadata: Record<string, string>): string {
  const lines = Object.entries(metadata).map(([k, v]) => `  <${k}>${x(v)}</${k}>`);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Metadata>\n${lines.join("\n")}${lines.length ? "\n" : ""}</Metadata>\n`;
}

const PROPERTY_ORDER: PropertyName[] = [
  "Last-Modified",
  "Etag",
  "Content-Length",
  "Content-Type",
  "Content-MD5",
  "Content-Encoding",
  "Content-Language",
  "Cache-Control",
];

export function writePropertiesFile(properties: BlobProperties): string {
  const lines = PROPERTY_ORDER.filter((k) => properties[k] !== undefined).map(
    (k) => `  <${k}>${x(properties[k]!)}</${k}>`,
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Properties>\n${lines.join("\n")}${lines.length ? "\n" : ""}</Properties>\n`;
}
