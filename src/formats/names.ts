/**
 * Rules for names that come from a customer's manifest: drive-relative file paths (which must
 * never leave the drive) and blob paths (container and blob naming rules of the Blob service).
 */

export type PathCheck =
  | { ok: true; segments: string[] }
  | { ok: false; status: "FileNameInvalid" | "FileNameTooLong"; reason: string };

const RESERVED_NTFS = /^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]|CONIN\$|CONOUT\$)(\..*)?$/i;
const NTFS_FORBIDDEN = /[<>:"|?*]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what we reject
const CONTROL = /[\u0000-\u001f\u007f]/;
export const MAX_SEGMENT = 255;
export const MAX_PATH = 32_767;

/**
 * A manifest FilePath (`\dir\file.ext`, relative to the drive root). Returns its segments, or why
 * it is refused: `..`, absolute and drive-letter and UNC paths, NUL and control characters,
 * reserved NTFS names and characters.
 */
export function checkFilePath(path: string): PathCheck {
  const bad = (reason: string): PathCheck => ({ ok: false, status: "FileNameInvalid", reason });
  if (path.length === 0) return bad("the path is empty");
  if (path.includes("\0")) return bad("the path contains a NUL character");
  if (CONTROL.test(path)) return bad("the path contains a control character");
  if (/^[A-Za-z]:/.test(path))
    return bad("the path names a drive letter; it must be relative to the drive root");
  if (/^[\\/]{2}/.test(path))
    return bad("the path is a UNC or network path; it must be relative to the drive root");
  if (path.length > MAX_PATH)
    return { ok: false, status: "FileNameTooLong", reason: `the path is longer than ${MAX_PATH} characters` };
  const segments = path.replace(/^[\\/]/, "").split(/[\\/]/);
  for (const s of segments) {
    if (s === "") return bad("the path has an empty segment");
    if (s === "..") return bad("the path escapes the drive root ('..')");
    if (s === ".") return bad("the path has a '.' segment");
    if (RESERVED_NTFS.test(s)) return bad(`'${s}' is a reserved device name`);
    if (NTFS_FORBIDDEN.test(s)) return bad(`'${s}' contains a character NTFS does not allow (< > : " | ? *)`);
    if (/[ .]$/.test(s)) return bad(`'${s}' ends with a space or a dot`);
    if (s.length > MAX_SEGMENT)
      return {
        ok: false,
        status: "FileNameTooLong",
        reason: `a path segment is longer than ${MAX_SEGMENT} characters`,
      };
  }
  return { ok: true, segments };
}

/** A blob of the account: its container and its name inside the container (never re-split). */
export interface BlobAddress {
  container: string;
  name: string;
}

export type BlobPathCheck = ({ ok: true } & BlobAddress) | { ok: false; reason: string };

const CONTAINER = /^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;
export const CONTAINER_NAME = CONTAINER;
// C0, DEL and C1 controls: URL layers and the Blob service drop or rewrite them.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what we reject
const NAME_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Lone surrogates cannot be UTF-8 encoded; U+FFFE/U+FFFF cannot appear in the XML copy log.
const NAME_UNENCODABLE = /\p{Cs}|[\uFFFE\uFFFF]/u;
export const MAX_BLOB_NAME = 1024;
export const MAX_BLOB_SEGMENTS = 254;

/**
 * A container name (reference §1.3, Blob service naming rules): 3-63 lower-case letters, digits
 * and single hyphens, starting and ending with a letter or digit; or the system containers
 * `$root` (and `$web`), plus `$logs` for reading only (Storage Analytics owns it).
 */
export function checkContainerName(container: string, use: "write" | "read" = "write"): string | undefined {
  if (container === "$root" || container === "$web") return undefined;
  if (container === "$logs")
    return use === "read"
      ? undefined
      : "'$logs' is written by Storage Analytics only; import into another container";
  if (!CONTAINER.test(container))
    return `'${container}' is not a valid container name (3-63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit)`;
  return undefined;
}

/**
 * Why a blob name (the part after the container) is refused, or undefined. Refused: what URL
 * normalisation or the Blob service would rewrite, so the blob written could differ from (or
 * leave) the one named: dot segments (also full-width and other look-alike dots), empty
 * segments, segments ending in a dot, backslashes (WHATWG URLs read them as '/'), '%' (an
 * escape some layer may decode), control characters, unencodable characters, and the length
 * limits (1024 characters, 254 segments).
 */
export function checkBlobName(name: string, container = ""): string | undefined {
  if (name.length === 0 || name.length > MAX_BLOB_NAME)
    return `a blob name has 1 to ${MAX_BLOB_NAME} characters (this one has ${name.length})`;
  if (NAME_CONTROL.test(name)) return "the blob name contains a control character";
  if (NAME_UNENCODABLE.test(name))
    return "the blob name contains a character that has no UTF-8 form (a lone surrogate) or cannot be written to the copy log";
  if (name.includes("\\"))
    return "the blob name contains a backslash, which URL parsers turn into '/'; use '/' between directories";
  if (name.includes("%"))
    return "the blob name contains '%', which a URL layer may decode as an escape (%2e%2e is '..'); rename the file";
  if (container === "$root" && name.includes("/")) return "a blob in the root container cannot contain '/'";
  const segments = name.split("/");
  if (segments.length > MAX_BLOB_SEGMENTS)
    return `the blob name has more than ${MAX_BLOB_SEGMENTS} path segments (${segments.length})`;
  for (const s of segments) {
    if (s === "")
      return "the blob name has an empty path segment (a leading, trailing or doubled '/'), which URL normalisation may remove";
    const folded = s.normalize("NFKC");
    if (/^\.+$/.test(folded))
      return `the blob name has a '${s}' path segment, which URL normalisation would resolve into another path`;
    if (folded.endsWith("."))
      return `the path segment '${s}' ends with a dot, which the Blob service does not keep`;
  }
  return undefined;
}

/**
 * A manifest or export BlobPath, `container/name` or `$root/name`, parsed into its container and
 * name before any request is built; the name is never re-split on anything but this first '/'.
 */
export function checkBlobPath(blobPath: string, use: "write" | "read" = "write"): BlobPathCheck {
  const slash = blobPath.indexOf("/");
  if (slash <= 0)
    return { ok: false, reason: "a blob path starts with the container name, then '/' and the blob name" };
  const container = blobPath.slice(0, slash);
  const name = blobPath.slice(slash + 1);
  const bad = checkContainerName(container, use) ?? checkBlobName(name, container);
  if (bad) return { ok: false, reason: bad };
  return { ok: true, container, name };
}

/** An export `blobPathPrefix` (reference §4.5): plain "starts with" on `/container/name`. */
export interface BlobPrefix {
  /** Set when the prefix names a whole container (`/music/...`); the name prefix is then inside it. */
  container?: string;
  /** Without a whole container: container names starting with this (`/book` → `book*`; `/` → all). */
  containerPrefix: string;
  namePrefix: string;
}

export type BlobPrefixCheck = { ok: true; prefix: BlobPrefix } | { ok: false; reason: string };

/**
 * An export blob path prefix: `/`, `/<start of container names>`, `/<container>/`, or
 * `/<container>/<start of blob names>`. The name part follows the blob-name rules for every
 * complete segment; its last, partial segment may end anywhere except inside a dot segment.
 */
export function checkBlobPrefix(prefix: string): BlobPrefixCheck {
  const bad = (reason: string): BlobPrefixCheck => ({ ok: false, reason });
  if (!prefix.startsWith("/"))
    return bad("a blob path prefix starts with '/' and then (part of) a container name");
  const rest = prefix.slice(1);
  const slash = rest.indexOf("/");
  if (slash < 0) {
    if (!/^(\$?[a-z0-9-]*)$/.test(rest) || rest.includes("--") || rest.length > 63)
      return bad(`'${rest}' cannot begin a container name (lower-case letters, digits and single hyphens)`);
    return { ok: true, prefix: { containerPrefix: rest, namePrefix: "" } };
  }
  const container = rest.slice(0, slash);
  const namePrefix = rest.slice(slash + 1);
  const c = checkContainerName(container, "read");
  if (c) return bad(c);
  // Complete segments follow the blob-name rules; the last, partial one only the character rules
  // (`/c/ima.` rightly selects `ima.png`; listing sends the prefix as a query value, never a path).
  const cut = namePrefix.lastIndexOf("/");
  const partial = namePrefix.slice(cut + 1);
  if (cut === 0) return bad("the blob name prefix starts with an empty path segment ('//')");
  if (container === "$root" && cut >= 0) return bad("a blob in the root container cannot contain '/'");
  const n =
    (cut > 0 ? checkBlobName(namePrefix.slice(0, cut), container) : undefined) ??
    (partial ? checkBlobName(`${partial}x`, container) : undefined);
  if (n) return bad(n.replace("blob name", "blob name prefix"));
  return { ok: true, prefix: { container, containerPrefix: container, namePrefix } };
}
