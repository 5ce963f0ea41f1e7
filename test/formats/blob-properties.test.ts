import { describe, expect, it } from "vitest";
import {
  md5Hex,
  readMetadataFile,
  readPropertiesFile,
  writeMetadataFile,
  writePropertiesFile,
} from "../../src/formats/blob-properties.js";

const META = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>
<Metadata>
  <UploadMethod>Windows Azure Import/Export service</UploadMethod>
  <DataSetName>SampleData</DataSetName>
  <CreationDate>10/1/2013</CreationDate>
</Metadata>`);

describe("metadata files", () => {
  it("reads the documented example after checking its hash", async () => {
    const r = await readMetadataFile(META, md5Hex(META).toLowerCase());
    expect(r).toEqual({
      ok: true,
      value: {
        UploadMethod: "Windows Azure Import/Export service",
        DataSetName: "SampleData",
        CreationDate: "10/1/2013",
      },
    });
  });

  it.each([
    ["a hash mismatch", META, "00000000000000000000000000000000", "Corrupted", /MD5/],
    ["malformed XML", Buffer.from("<Metadata><a>"), undefined, "XmlReadFailed", /not well-formed/],
    ["a wrong root", Buffer.from("<Meta/>"), undefined, "XmlReadFailed", /root element/],
    [
      "an invalid name",
      Buffer.from("<Metadata><_ok>1</_ok><a-b>1</a-b></Metadata>"),
      undefined,
      "XmlReadFailed",
      /C# identifier/,
    ],
    [
      "a duplicate name",
      Buffer.from("<Metadata><Name>1</Name><name>2</name></Metadata>"),
      undefined,
      "XmlReadFailed",
      /twice/,
    ],
    [
      "a non-ASCII value",
      Buffer.from("<Metadata><City>Zürich</City></Metadata>"),
      undefined,
      "XmlReadFailed",
      /ASCII/,
    ],
    [
      "a DOCTYPE",
      Buffer.from('<!DOCTYPE x [<!ENTITY e "x">]><Metadata><a>&e;</a></Metadata>'),
      undefined,
      "XmlReadFailed",
      /DOCTYPE/,
    ],
  ])("refuses %s", async (_n, data, hash, status, message) => {
    const r = await readMetadataFile(data, hash ?? md5Hex(data));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.status).toBe(status);
      expect(r.message).toMatch(message);
    }
  });

  it("round-trips what the export engine writes", async () => {
    const text = writeMetadataFile({ Owner: "bob", note: "a<b & c" });
    expect(await readMetadataFile(Buffer.from(text), md5Hex(text))).toEqual({
      ok: true,
      value: { Owner: "bob", note: "a<b & c" },
    });
  });
});

describe("properties files", () => {
  const props = {
    "Last-Modified": "Mon, 18 Sep 2012 23:47:08 GMT",
    Etag: "0x8CF6BA7F1B72E9E",
    "Content-Length": "10884",
    "Content-Type": "image/jpeg",
    "Content-MD5": "Q2hlY2sgSW50ZWdyaXR5IQ==",
    "Cache-Control": "no-cache",
  };

  it("round-trips an export properties file; import ignores the export-only ones", async () => {
    const text = writePropertiesFile(props);
    expect(await readPropertiesFile(Buffer.from(text), md5Hex(text), "export")).toEqual({
      ok: true,
      value: props,
    });
    expect(await readPropertiesFile(Buffer.from(text), md5Hex(text), "import")).toEqual({
      ok: true,
      value: {
        "Content-Type": "image/jpeg",
        "Content-MD5": "Q2hlY2sgSW50ZWdyaXR5IQ==",
        "Cache-Control": "no-cache",
      },
    });
  });

  it.each([
    ["an unknown property", "<Properties><x-ms-meta>1</x-ms-meta></Properties>", /not a blob property/],
    ["a bad Content-MD5", "<Properties><Content-MD5>abc</Content-MD5></Properties>", /Content-MD5/],
    [
      "a duplicate",
      "<Properties><Content-Type>a</Content-Type><Content-Type>b</Content-Type></Properties>",
      /twice/,
    ],
  ])("refuses %s", async (_n, text, message) => {
    const r = await readPropertiesFile(Buffer.from(text), md5Hex(text), "import");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });
});
