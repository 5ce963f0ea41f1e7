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

export type BlobPathCheck = { ok: true; container: string; name: string } | { ok: false; reason: string };

const CONTAINER = /^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

/** A manifest BlobPath: `container/name`, or `$root/name`. */
export function checkBlobPath(blobPath: string): BlobPathCheck {
  const slash = blobPath.indexOf("/");
  if (slash <= 0)
    return { ok: false, reason: "a blob path starts with the container name, then '/' and the blob name" };
  const container = blobPath.slice(0, slash);
  const name = blobPath.slice(slash + 1);
  if (container !== "$root" && !CONTAINER.test(container)) {
    return {
      ok: false,
      reason: `'${container}' is not a valid container name (3-63 lower-case letters, digits and single hyphens)`,
    };
  }
  if (name.length === 0 || name.length > 1024)
    return { ok: false, reason: "a blob name has 1 to 1024 characters" };
  if (CONTROL.test(name)) return { ok: false, reason: "the blob name contains a control character" };
  if (name.includes("\\")) return { ok: false, reason: "the blob name contains a backslash" };
  if (container === "$root" && name.includes("/"))
    return { ok: false, reason: "a blob in the root container cannot contain '/'" };
  if (name.split("/").length > 254)
    return { ok: false, reason: "the blob name has more than 254 path segments" };
  if (/[./]$/.test(name))
    return { ok: false, reason: "the blob name ends with '.' or '/', which the Blob service would not keep" };
  return { ok: true, container, name };
}

export const CONTAINER_NAME = CONTAINER;
