/** Manifest XML builders and readers shared by the manifest reader's tests. */
import { type ManifestHeader, type ManifestItem, readManifest } from "../../src/formats/manifest.js";
import { ManifestError } from "../../src/formats/status.js";

export async function read(
  xml: string | Buffer,
  kind: "import" | "export" = "import",
  expectedDriveId?: string,
) {
  const items: ManifestItem[] = [];
  for await (const item of readManifest([xml], { kind, ...(expectedDriveId ? { expectedDriveId } : {}) }))
    items.push(item);
  const header = items.find((i) => i.type === "header")?.header as ManifestHeader;
  const blobs = items.filter((i): i is Extract<ManifestItem, { type: "blob" }> => i.type === "blob");
  return { header, blobs, end: items[items.length - 1] };
}

export async function failure(
  xml: string,
  kind: "import" | "export" = "import",
  expectedDriveId?: string,
): Promise<ManifestError> {
  try {
    await read(xml, kind, expectedDriveId);
  } catch (e) {
    if (e instanceof ManifestError) return e;
    throw e;
  }
  throw new Error("expected a ManifestError");
}

// The documented export example (reference §1.9), with the abridged blocks written out.
export const EXPORT_EXAMPLE = `<DriveManifest Version="2011-10-01">
  <Drive>
    <DriveId>9WM35C3U</DriveId>
    <ClientCreator>Windows Azure Import/Export service</ClientCreator>
    <BlobList>
      <Blob>
        <BlobPath>pictures/wild/canyon.jpg</BlobPath>
        <FilePath>\\pictures\\wild\\canyon.jpg</FilePath>
        <Length>10884</Length>
        <BlockList>
          <Block Offset="0" Length="2721" Id="AAAAAA==" Hash="263DC9C4B99C2177769C5EBE04787037"/>
          <Block Offset="2721" Length="2721" Id="AQAAAA==" Hash="0C52BAE2CC20EFEC15CC1E3045517AA6"/>
          <Block Offset="5442" Length="2721" Id="AgAAAA==" Hash="73D1CB62CB426230C34C9F57B7148F10"/>
          <Block Offset="8163" Length="2721" Id="AwAAAA==" Hash="11210D5A7F0F4F5AA3FD8A2E9E1D7D3C"/>
        </BlockList>
        <PropertiesPath Hash="81D7F81B2C29F10D6E123D386C3A4D5A">\\pictures\\wild\\canyon.jpg.properties</PropertiesPath>
      </Blob>
    </BlobList>
  </Drive>
</DriveManifest>`;

export const blob = (inner: string) => `<Blob>${inner}</Blob>`;
export const block = (offset: number, length: number, extra = "") =>
  `<Block Offset="${offset}" Length="${length}" Hash="263DC9C4B99C2177769C5EBE04787037"${extra}/>`;
export const importManifest = (
  blobs: string,
  opts: { driveId?: string; cred?: string; version?: string; lists?: string } = {},
) =>
  `<?xml version="1.0" encoding="UTF-8"?>
<DriveManifest Version="${opts.version ?? "2014-11-01"}">
  <Drive>
    <DriveId>${opts.driveId ?? "WD-WMATV123456"}</DriveId>
    ${opts.cred ?? "<StorageAccountKey>Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==</StorageAccountKey>"}
    <ClientCreator>drive-station test</ClientCreator>
    ${opts.lists ?? `<BlobList>${blobs}</BlobList>`}
  </Drive>
</DriveManifest>`;
export const okBlob = (path = "photos/a.jpg", file = "\\s1\\a.jpg") =>
  blob(
    `<BlobPath>${path}</BlobPath><FilePath>${file}</FilePath><Length>10</Length><BlockList>${block(0, 10)}</BlockList>`,
  );
