/**
 * Writes drive manifests (reference §1.2, element order as documented): import manifests for
 * `station prepare`, export manifests (§1.9) for the export engine. Streams: one blob at a time.
 */
import type { Credential, HashedPath, ManifestBlob } from "./manifest.js";
import { escapeXml as x } from "./xml.js";

export const EXPORT_CLIENT_CREATOR = "Windows Azure Import/Export service";

/** Block IDs the service writes on export: Base64 of the 4-byte little-endian block index. */
export function indexBlockId(index: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(index);
  return b.toString("base64");
}

export interface ManifestWriterOptions {
  driveId: string;
  kind: "import" | "export";
  credential?: Credential;
  clientCreator?: string;
  version?: string;
}

export type ManifestBlobOut = Omit<ManifestBlob, "list" | "disposition"> & {
  disposition?: ManifestBlob["disposition"];
};

export class ManifestWriter {
  private openList = false;

  constructor(
    private readonly write: (chunk: string) => void,
    private readonly opts: ManifestWriterOptions,
  ) {
    const cred = opts.credential;
    let head = `<?xml version="1.0" encoding="UTF-8"?>\n<DriveManifest Version="${x(opts.version ?? "2014-11-01")}">\n  <Drive>\n    <DriveId>${x(opts.driveId)}</DriveId>\n`;
    if (opts.kind === "import") {
      if (!cred) throw new Error("an import manifest needs a credential");
      head +=
        cred.kind === "accountKey"
          ? `    <StorageAccountKey>${x(cred.key)}</StorageAccountKey>\n`
          : `    <ContainerSas>${x(`${cred.container}?${cred.token}`)}</ContainerSas>\n`;
    }
    const creator = opts.clientCreator ?? (opts.kind === "export" ? EXPORT_CLIENT_CREATOR : undefined);
    if (creator) head += `    <ClientCreator>${x(creator)}</ClientCreator>\n`;
    this.write(head);
  }

  /** Starts a BlobList; the previous one, if any, is closed. */
  blobList(defaults: { id?: string; metadata?: HashedPath; properties?: HashedPath } = {}): this {
    if (this.openList) this.write("    </BlobList>\n");
    this.openList = true;
    let s = `    <BlobList${defaults.id ? ` Id="${x(defaults.id)}"` : ""}>\n`;
    if (defaults.metadata)
      s += `      <MetadataPath Hash="${defaults.metadata.hash}">${x(defaults.metadata.path)}</MetadataPath>\n`;
    if (defaults.properties)
      s += `      <PropertiesPath Hash="${defaults.properties.hash}">${x(defaults.properties.path)}</PropertiesPath>\n`;
    this.write(s);
    return this;
  }

  blob(b: ManifestBlobOut): this {
    if (!this.openList) this.blobList();
    const lines = [
      "      <Blob>",
      `        <BlobPath>${x(b.blobPath)}</BlobPath>`,
      `        <FilePath>${x(b.filePath)}</FilePath>`,
    ];
    if (b.clientData !== undefined) lines.push(`        <ClientData>${x(b.clientData)}</ClientData>`);
    if (b.snapshot !== undefined) lines.push(`        <Snapshot>${x(b.snapshot)}</Snapshot>`);
    lines.push(`        <Length>${b.length}</Length>`);
    if (this.opts.kind === "import" && b.disposition)
      lines.push(`        <ImportDisposition>${b.disposition}</ImportDisposition>`);
    if (b.kind === "page") {
      lines.push("        <PageRangeList>");
      for (const c of b.chunks)
        lines.push(`          <PageRange Offset="${c.offset}" Length="${c.length}" Hash="${c.hash}"/>`);
      lines.push("        </PageRangeList>");
    } else {
      lines.push("        <BlockList>");
      for (const c of b.chunks)
        lines.push(
          `          <Block Offset="${c.offset}" Length="${c.length}"${c.id ? ` Id="${c.id}"` : ""} Hash="${c.hash}"/>`,
        );
      lines.push("        </BlockList>");
    }
    if (b.metadata)
      lines.push(`        <MetadataPath Hash="${b.metadata.hash}">${x(b.metadata.path)}</MetadataPath>`);
    if (b.properties)
      lines.push(
        `        <PropertiesPath Hash="${b.properties.hash}">${x(b.properties.path)}</PropertiesPath>`,
      );
    lines.push("      </Blob>\n");
    this.write(lines.join("\n"));
    return this;
  }

  end(): void {
    if (!this.openList) this.blobList();
    this.write("    </BlobList>\n  </Drive>\n</DriveManifest>\n");
  }
}
