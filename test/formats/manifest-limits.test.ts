/**
 * A hostile manifest cannot make the reader hold much memory, whatever its size: a text, tag or
 * attribute longer than MAX_TOKEN_CHARS, elements nested deeper than MAX_DEPTH, and more blocks or
 * page ranges than one blob may have are refused, streamed in 64 KiB chunks as a drive's is.
 */
import { describe, expect, it } from "vitest";
import { readManifest } from "../../src/formats/manifest.js";
import { MAX_DEPTH, MAX_TOKEN_CHARS } from "../../src/formats/xml.js";
import { blob, failure, importManifest, okBlob } from "./manifest-fixtures.js";

/** The manifest as a drive streams it: 64 KiB chunks, generated lazily (never whole in memory). */
function* chunked(head: string, fill: string, fillChars: number, tail: string): Iterable<string> {
  yield head;
  const piece = fill.repeat(Math.ceil((64 * 1024) / fill.length));
  for (let sent = 0; sent < fillChars; sent += piece.length) yield piece;
  yield tail;
}

async function drain(source: Iterable<string>): Promise<unknown> {
  try {
    for await (const _ of readManifest(source, { kind: "import" })) void _;
  } catch (e) {
    return e;
  }
  return undefined;
}

describe("manifest memory bounds", () => {
  it("a text node longer than the bound fails the manifest as it streams, not at its end", async () => {
    const [head, tail] = importManifest(okBlob()).split("drive-station test");
    // 64 MiB of text in one element: refused once the bound is passed.
    const err = await drain(chunked(head!, "x", 64 * 1024 * 1024, `drive-station test${tail}`));
    expect(err).toMatchObject({ name: "ManifestError", status: "ManifestFormatInvalid" });
    expect((err as Error).message).toMatch(new RegExp(`runs over ${MAX_TOKEN_CHARS} characters`));
  });

  it("an attribute value longer than the bound fails the same way", async () => {
    const head = `<?xml version="1.0"?><DriveManifest Version="2014-11-01"><Drive a="`;
    const err = await drain(chunked(head, "y", 4 * MAX_TOKEN_CHARS, `"></Drive></DriveManifest>`));
    expect((err as Error).message).toMatch(/runs over/);
  });

  it("a text just under the bound, split over many chunks, is read", async () => {
    const [head, tail] = importManifest(okBlob()).split("drive-station test");
    const err = await drain(chunked(head!, "z", MAX_TOKEN_CHARS - 128 * 1024, tail!));
    expect(err).toBeUndefined();
  });

  it("elements nested deeper than the bound fail the manifest", async () => {
    const deep = `${"<a>".repeat(MAX_DEPTH + 10)}${"</a>".repeat(MAX_DEPTH + 10)}`;
    const e = await failure(importManifest(okBlob()).replace("<ClientCreator>", `${deep}<ClientCreator>`));
    expect(e.message).toMatch(new RegExp(`nest deeper than ${MAX_DEPTH}`));
  });

  it("self-closing elements do not count as nesting", async () => {
    const flat = "<a/>".repeat(MAX_DEPTH * 4);
    const err = await drain([importManifest(okBlob()).replace("<ClientCreator>", `${flat}<ClientCreator>`)]);
    expect(err).toBeUndefined();
  });

  it("a blob listing more page ranges than the limit fails alone; the next blob is read", async () => {
    const ranges = Array.from(
      { length: 262_145 },
      (_, i) => `<PageRange Offset="${i * 512}" Length="512" Hash="263DC9C4B99C2177769C5EBE04787037"/>`,
    ).join("");
    const items: { problem?: { message: string } }[] = [];
    const xml = importManifest(
      blob(
        `<BlobPath>c1c/p</BlobPath><FilePath>\\p</FilePath><Length>${262_145 * 512}</Length><PageRangeList>${ranges}</PageRangeList>`,
      ) + okBlob("c1c/after", "\\after"),
    );
    for await (const it of readManifest([xml], { kind: "import" })) if (it.type === "blob") items.push(it);
    expect(items).toHaveLength(2);
    expect(items[0]!.problem!.message).toMatch(/more than 262144 page ranges: the limit for one blob/);
    expect(items[1]!.problem).toBeUndefined();
  });
});
