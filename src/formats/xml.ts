/**
 * Streaming XML events on top of saxes. Any DOCTYPE is refused outright, so no DTD, no entity
 * expansion (XXE, billion laughs); saxes itself knows only the five predefined entities.
 * Events come in batches, one per input chunk, so a million-element document costs one
 * generator step per chunk, not per element.
 */
import { StringDecoder } from "node:string_decoder";
import { SaxesParser } from "saxes";

export class XmlSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
    this.name = "XmlSyntaxError";
  }
}

export type XmlEvent =
  | { t: "open"; name: string; attrs: Record<string, string>; line: number }
  | { t: "text"; text: string }
  | { t: "close"; name: string };

/**
 * What one document may cost in memory, whatever its size: the parser holds a whole text node,
 * tag or attribute in memory until it ends, and one entry per open element.
 */
export const MAX_TOKEN_CHARS = 1024 * 1024;
export const MAX_DEPTH = 256;

export async function* xmlEvents(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
): AsyncGenerator<XmlEvent[]> {
  const parser = new SaxesParser({ position: true });
  let depth = 0;
  let run = 0; // characters since the last '<' or '>': the token being read
  let batch: XmlEvent[] = [];
  let failure: XmlSyntaxError | undefined;
  const fail = (message: string) => {
    failure ??= new XmlSyntaxError(message, parser.line, parser.column);
  };
  parser.on("error", (e) => fail(e.message));
  parser.on("doctype", () => fail("a DOCTYPE is not allowed (no DTDs or entity declarations)"));
  parser.on("opentag", (tag) => {
    const attrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(tag.attributes)) attrs[k] = typeof v === "string" ? v : v.value;
    batch.push({ t: "open", name: tag.name, attrs, line: parser.line });
    if (++depth > MAX_DEPTH) fail(`elements nest deeper than ${MAX_DEPTH} levels`);
    if (tag.isSelfClosing) depth--;
  });
  parser.on("text", (text) => batch.push({ t: "text", text }));
  parser.on("cdata", (text) => batch.push({ t: "text", text }));
  parser.on("closetag", (tag) => {
    batch.push({ t: "close", name: tag.name });
    if (!tag.isSelfClosing) depth--;
  });

  const decoder = new StringDecoder("utf8");
  let first = true;
  const feed = (text: string) => {
    if (failure) return;
    try {
      parser.write(text);
    } catch (e) {
      fail((e as Error).message);
    }
  };
  for await (const chunk of source) {
    let text = typeof chunk === "string" ? chunk : decoder.write(chunk);
    if (first && text.length > 0) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // UTF-8 BOM
      first = false;
    }
    run = tokenRun(text, run, fail);
    feed(text);
    if (failure) throw failure;
    if (batch.length) {
      const out = batch;
      batch = [];
      yield out;
    }
  }
  feed(decoder.end());
  if (!failure) {
    try {
      parser.close();
    } catch (e) {
      fail((e as Error).message);
    }
  }
  if (failure) throw failure;
  if (batch.length) yield batch;
}

const DELIMITER = /[<>]/g;

/**
 * The run of characters without '<' or '>' at the end of `text`, given the run carried in: fails
 * when any run passes MAX_TOKEN_CHARS. Scans only when the chunk could hold such a run.
 */
function tokenRun(text: string, carried: number, fail: (message: string) => void): number {
  const last = Math.max(text.lastIndexOf("<"), text.lastIndexOf(">"));
  const tail = last < 0 ? carried + text.length : text.length - 1 - last;
  if (carried + text.length <= MAX_TOKEN_CHARS) return tail;
  let longest = tail;
  let prev = -1;
  DELIMITER.lastIndex = 0;
  for (let m = DELIMITER.exec(text); m; m = DELIMITER.exec(text)) {
    longest = Math.max(longest, (prev < 0 ? carried : 0) + m.index - prev - 1);
    prev = m.index;
  }
  if (longest > MAX_TOKEN_CHARS) fail(`a text, tag or attribute runs over ${MAX_TOKEN_CHARS} characters`);
  return tail;
}

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};

export const escapeXml = (s: string): string => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

/** Parses a small document fully into a tree (metadata and properties files). */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  text: string;
  children: XmlElement[];
}

export async function parseXmlTree(data: Buffer | string): Promise<XmlElement> {
  const root: XmlElement = { name: "", attrs: {}, text: "", children: [] };
  const stack: XmlElement[] = [root];
  for await (const batch of xmlEvents([data])) {
    for (const e of batch) {
      const top = stack[stack.length - 1]!;
      if (e.t === "open") {
        const el: XmlElement = { name: e.name, attrs: e.attrs, text: "", children: [] };
        top.children.push(el);
        stack.push(el);
      } else if (e.t === "text") top.text += e.text;
      else stack.pop();
    }
  }
  const doc = root.children[0];
  if (!doc) throw new XmlSyntaxError("the document has no root element", 1, 1);
  return doc;
}
