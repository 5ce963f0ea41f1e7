/** `station prepare`: argument handling for prepareDrive. Credentials come from files, never argv. */
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { Credential } from "../formats/manifest.js";
import { IMPORT_DISPOSITIONS, type ImportDisposition } from "../formats/status.js";
import { PrepareError, prepareDrive } from "../prepare/prepare-drive.js";

export async function runPrepare(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      drive: { type: "string" },
      source: { type: "string" },
      session: { type: "string" },
      dest: { type: "string" },
      "drive-id": { type: "string" },
      "sas-file": { type: "string" },
      "account-key-file": { type: "string" },
      "blob-type": { type: "string", default: "BlockBlob" },
      disposition: { type: "string", default: "rename" },
      "skip-write": { type: "boolean", default: false },
      append: { type: "boolean", default: false },
      "block-size": { type: "string" },
      out: { type: "string" },
      "metadata-file": { type: "string" },
      "properties-file": { type: "string" },
    },
  });
  const need = (k: keyof typeof values) => {
    const v = values[k];
    if (typeof v !== "string" || !v) throw new PrepareError(`prepare: --${k} is required.`);
    return v;
  };
  let credential: Credential;
  if (values["sas-file"] && values["account-key-file"])
    throw new PrepareError("prepare: give --sas-file or --account-key-file, not both.");
  if (values["sas-file"]) {
    const sas = readFileSync(values["sas-file"], "utf8").trim();
    const q = sas.indexOf("?");
    if (q <= 0) throw new PrepareError(`prepare: ${values["sas-file"]} must hold <container>?<sas-token>.`);
    credential = { kind: "containerSas", container: sas.slice(0, q), token: sas.slice(q + 1) };
  } else if (values["account-key-file"]) {
    credential = { kind: "accountKey", key: readFileSync(values["account-key-file"], "utf8").trim() };
  } else
    throw new PrepareError(
      "prepare: --sas-file or --account-key-file is required (the manifest carries the credential).",
    );
  const blobType = values["blob-type"];
  if (blobType !== "BlockBlob" && blobType !== "PageBlob")
    throw new PrepareError("prepare: --blob-type is BlockBlob or PageBlob.");
  const disposition = values.disposition as ImportDisposition;
  if (!IMPORT_DISPOSITIONS.includes(disposition))
    throw new PrepareError(`prepare: --disposition is one of ${IMPORT_DISPOSITIONS.join(", ")}.`);

  const result = await prepareDrive({
    driveRoot: need("drive"),
    source: need("source"),
    sessionId: need("session"),
    destination: need("dest"),
    driveId: need("drive-id"),
    credential,
    blobType,
    disposition,
    skipWrite: values["skip-write"] ?? false,
    append: values.append ?? false,
    ...(values["block-size"] ? { blockSize: Number(values["block-size"]) } : {}),
    ...(values["metadata-file"] ? { metadataFile: values["metadata-file"] } : {}),
    ...(values["properties-file"] ? { propertiesFile: values["properties-file"] } : {}),
  });
  const entry = {
    driveId: result.driveId,
    manifestFile: result.manifestFile,
    manifestHash: result.manifestHash,
  };
  for (const s of result.skipped) process.stderr.write(`skipped ${s.path}: ${s.reason}\n`);
  process.stdout.write(
    `${result.blobs} files, ${result.bytes} bytes prepared on drive ${result.driveId}.\nDrive entry for the job's driveList:\n${JSON.stringify(entry, null, 2)}\n`,
  );
  if (values.out) writeFileSync(values.out, `${JSON.stringify(entry, null, 2)}\n`);
}
