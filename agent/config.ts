/**
 * Agent configuration: one JSON file, parsed once at start against a schema. A bad value stops
 * the agent with a message naming the key and the value, and exit code 78 (EX_CONFIG) for systemd.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { RESOURCE_GROUP, SUBSCRIPTION_ID } from "../src/api/scope.js";
import { StationError } from "../src/errors.js";
import { scrubSecrets } from "../src/secrets.js";
import { findUnknownKey } from "./config-keys.js";
import { shownConfigValue, shownUnknownKey } from "./config-secrets.js";

/** An ARM-like role assignment: a subscription, or one resource group in it. */
const roleAssignment = z.object({
  subscriptionId: z.string().regex(SUBSCRIPTION_ID, "must be a subscription id (letters, digits, '-')"),
  resourceGroup: z
    .string()
    .regex(RESOURCE_GROUP, "must be a resource group name (1-90 letters, digits, '-', '_', '.', '()')")
    .optional(),
});

/**
 * A storage account key the station holds (export reads with it). `subscriptionId` (and
 * optionally `resourceGroup`) name the account's owner: a job may only use the key when its
 * storageAccountId lies there, so a customer cannot export another tenant's account by naming
 * it under its own subscription.
 */
const stationAccount = z.object({
  name: z.string().regex(/^[a-z0-9]{3,24}$/),
  key: z.string().min(16),
  subscriptionId: z
    .string()
    .regex(SUBSCRIPTION_ID, "must be a subscription id (letters, digits, '-')")
    .optional(),
  resourceGroup: z.string().regex(RESOURCE_GROUP, "must be a resource group name").optional(),
});

export const tokenSchema = z
  .object({
    name: z.string().min(1).max(64),
    role: z.enum(["customer", "operator"]),
    token: z.string().min(16, "must be at least 16 characters").optional(),
    /** SHA-256 of the token, hex: the config then holds no usable secret. */
    tokenSha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, "must be 64 hex digits (sha256sum of the token)")
      .optional(),
    /** Customer tokens: the subscriptions / resource groups they may see. Required for customers. */
    scopes: z.array(roleAssignment).default([]),
  })
  .superRefine((t, ctx) => {
    if ((t.token === undefined) === (t.tokenSha256 === undefined)) {
      ctx.addIssue({ code: "custom", path: ["token"], message: "give exactly one of token or tokenSha256" });
    }
    if (t.role === "customer" && t.scopes.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["scopes"],
        message:
          "a customer token needs at least one scope: [{ subscriptionId, resourceGroup? }] (it would see nothing)",
      });
    }
    if (t.role === "operator" && t.scopes.length > 0) {
      ctx.addIssue({
        code: "custom",
        path: ["scopes"],
        message: "operator tokens see everything; remove scopes",
      });
    }
  });

/** Asymmetric algorithms only: never `none`, never HS* (a public key used as an HMAC secret). */
const JWT_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

const jwtSchema = z
  .object({
    /** Where the identity provider's signing keys come from: exactly one of these. */
    jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
    jwksFile: z.string().min(1).optional(),
    publicKeyFile: z.string().min(1).optional(),
    issuer: z.string().min(1),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).default(["RS256", "PS256", "ES256", "EdDSA"]),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(30),
    claims: z
      .object({
        /** The caller's name in messages and `systemData.createdBy`. */
        name: z.string().min(1).default("sub"),
        /** Array (or space-separated string) of role names. */
        roles: z.string().min(1).default("roles"),
        /** Array (or space-separated string) of `/subscriptions/<id>[/resourceGroups/<name>]` or bare subscription ids. */
        scopes: z.string().min(1).default("scopes"),
      })
      .default({ name: "sub", roles: "roles", scopes: "scopes" }),
    operatorRole: z.string().min(1).default("Station.Operator"),
    customerRole: z.string().min(1).default("Station.Customer"),
  })
  .refine((j) => [j.jwksUrl, j.jwksFile, j.publicKeyFile].filter(Boolean).length === 1, {
    message: "give exactly one of jwksUrl, jwksFile, publicKeyFile",
    path: ["jwksUrl"],
  });

export const configSchema = z.object({
  /** Jobs database, embedded Azurite data, generated tokens. Relative paths are relative to the config file's directory's parent. */
  dataDir: z.string().min(1).default("./data"),
  log: z
    .object({ level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info") })
    .default({ level: "info" }),
  api: z
    .object({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(7480),
      bodyLimitBytes: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(1024 * 1024),
      tls: z.object({ certFile: z.string().min(1), keyFile: z.string().min(1) }).optional(),
      /**
       * Static tokens. With neither tokens nor jwt configured the agent generates a pair into
       * dataDir/api-tokens.json (the customer one scoped to DEMO_SUBSCRIPTION).
       */
      tokens: z.array(tokenSchema).default([]),
      /** Optional: bearer JWTs from an identity provider, alongside (or instead of) static tokens. */
      jwt: jwtSchema.optional(),
    })
    .default({ host: "127.0.0.1", port: 7480, bodyLimitBytes: 1024 * 1024, tokens: [] }),
  station: z.object({
    /** This station's name in the fleet (drive claims, logs); default: the host name. */
    id: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be 1-63 letters, digits, '.', '_' or '-'")
      .optional(),
    /** How long a drive claim lasts without a heartbeat: a dead station's drives free up after this. */
    leaseSeconds: z.number().min(3).max(3600).default(30),
    location: z.object({
      id: z.string().regex(/^[a-z0-9]+$/, "must be a short lower-case id like 'westus'"),
      name: z.string().min(1),
      recipientName: z.string().min(1),
      streetAddress1: z.string().min(1),
      streetAddress2: z.string().optional(),
      city: z.string().min(1),
      stateOrProvince: z.string().optional(),
      postalCode: z.string().min(1),
      countryOrRegion: z.string().min(1),
      phone: z.string().min(1),
      additionalShippingInformation: z.string().optional(),
      supportedCarriers: z.array(z.string().min(1)).min(1),
    }),
  }),
  storage: z
    .discriminatedUnion("mode", [
      z.object({
        mode: z.literal("embedded"),
        host: z.string().default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(10000),
        /** Accounts the embedded Azurite serves (name + Base64 key); default: Azurite's devstoreaccount1. */
        accounts: z.array(stationAccount).default([]),
      }),
      z.object({
        mode: z.literal("azure"),
        /** `{account}` is replaced by the storage account name of the job. */
        endpointTemplate: z.string().includes("{account}").default("https://{account}.blob.core.windows.net"),
        /**
         * Keys of the storage accounts this station exports from (export manifests carry no
         * credential, reference §1.9); import uses the drive manifest's own credential.
         */
        accounts: z.array(stationAccount).default([]),
      }),
    ])
    .default({ mode: "embedded", host: "127.0.0.1", port: 10000, accounts: [] }),
  /** The job store: an embedded SQLite file (one station), or a PostgreSQL shared by a fleet of stations. */
  store: z
    .discriminatedUnion("kind", [
      z.object({ kind: z.literal("sqlite") }),
      z.object({
        kind: z.literal("postgres"),
        /** postgres://user:password@host:5432/db; the password is never logged. */
        url: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL"),
        poolSize: z.number().int().min(1).max(100).default(10),
        connectTimeoutSeconds: z.number().min(1).max(300).default(5),
      }),
    ])
    .default({ kind: "sqlite" }),
  timers: z
    .object({ intervalSeconds: z.number().min(1).max(3600).default(60) })
    .default({ intervalSeconds: 60 }),
  transfer: z
    .object({
      /** false: ready drives wait (maintenance hold); matching and check-in still happen. */
      enabled: z.boolean().default(true),
      /** Requests in flight for the whole station (blocks x block size bounds the memory). */
      concurrency: z.number().int().min(1).max(256).default(16),
      /** Blobs of one drive worked on at once (many small files). */
      blobConcurrency: z.number().int().min(1).max(1024).default(32),
      retry: z
        .object({
          attempts: z.number().int().min(1).max(100).default(8),
          baseMs: z.number().min(1).default(500),
          maxMs: z.number().min(1).default(15_000),
        })
        .default({ attempts: 8, baseMs: 500, maxMs: 15_000 }),
      /** After storage stayed down through every retry, the drive pauses this long, then resumes. */
      outageRetrySeconds: z.number().min(1).max(86_400).default(30),
      /** A read of a drive's file that takes longer ends its blob IOFailed (a dying disk can hang a read for good). */
      readTimeoutSeconds: z.number().min(1).max(3600).default(60),
      /** After this many hung reads a drive gets no more reads: its remaining blobs end IOFailed. */
      hungReadsPerDrive: z.number().int().min(1).max(64).default(3),
      /** Threads hashing imported blocks (both MD5s). Unset: one per core; 0: on the event loop (comparisons). */
      hashThreads: z.number().int().min(0).max(256).optional(),
      /** Threads sending block and page bodies (socket writes, TLS). Unset: half the cores, 1 to 8; 0: on the event loop. */
      uploadThreads: z.number().int().min(0).max(64).optional(),
      /** libuv I/O threads (drive reads, opens; a hung read holds one). Unset: 32, or 4 per core when more. */
      ioThreads: z.number().int().min(4).max(1024).optional(),
    })
    .default({
      enabled: true,
      concurrency: 16,
      blobConcurrency: 32,
      retry: { attempts: 8, baseMs: 500, maxMs: 15_000 },
      outageRetrySeconds: 30,
      readTimeoutSeconds: 60,
      hungReadsPerDrive: 3,
    }),
  export: z
    .object({
      /**
       * Where an export's read-back comes from: "medium" reads the drive itself past every cache
       * (a drive that does not hold its bytes is caught before it ships); "written" reads the
       * page cache right after the write (proves only what was written, and is cheaper).
       */
      verify: z.enum(["medium", "written"]).default("medium"),
    })
    .default({ verify: "medium" }),
  drives: z
    .object({
      enabled: z.boolean().default(true),
      pollIntervalMs: z.number().int().min(100).max(60_000).default(1000),
      /** Where the agent mounts drives (one directory per drive). */
      mountRoot: z.string().min(1).default("/run/drive-station/mnt"),
      /** Physical disks through drivelist; the station's system disk is always excluded. */
      physical: z.boolean().default(true),
      /** Staging: loop devices whose image file is in one of these directories. Empty: none. */
      loopImageDirs: z.array(z.string().min(1)).default([]),
      /** Volumes an operator or automounter already mounted below these directories. */
      mountedRoots: z.array(z.string().min(1)).default([]),
      /** Devices never to touch, on top of the system disk (e.g. a second internal disk). */
      excludeDevices: z.array(z.string().min(1)).default([]),
    })
    .default({
      enabled: true,
      pollIntervalMs: 1000,
      mountRoot: "/run/drive-station/mnt",
      physical: true,
      loopImageDirs: [],
      mountedRoots: [],
      excludeDevices: [],
    }),
});

export type AgentConfig = z.output<typeof configSchema>;

/**
 * The transfer core's read bounds from `transfer.readTimeoutSeconds` and `transfer.hungReadsPerDrive`;
 * station-wide, hung reads may hold at most half of the `ioThreads` (UV_THREADPOOL_SIZE, see threads.ts),
 * so the rest of the station keeps threads for its own file work.
 */
export const readLimitsOf = (
  t: AgentConfig["transfer"],
  ioThreads = 4,
): { timeoutMs: number; hungLimit: number; stationHungLimit: number } => ({
  timeoutMs: t.readTimeoutSeconds * 1000,
  hungLimit: t.hungReadsPerDrive,
  stationHungLimit: Math.max(1, Math.floor(ioThreads / 2)),
});

/** Size of libuv's I/O thread pool as this process got it (the agent relaunches itself to set it: relaunch.ts). */
export const ioThreadsOf = (env: NodeJS.ProcessEnv): number => {
  const n = Number(env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
};

export function parseConfig(raw: unknown, source: string): AgentConfig {
  // A key no schema object names is a typo or a setting this version does not have: stop.
  const unknown = findUnknownKey(configSchema, raw);
  if (unknown) {
    // The key itself may hold dots (user text): split only the schema's part of the path.
    const parent = unknown.path
      .slice(0, -unknown.key.length - 1)
      .split(".")
      .filter(Boolean);
    const shown = shownUnknownKey([...parent, unknown.key]);
    throw new StationError(
      "ConfigInvalid",
      `Config ${source}: unknown key ${shown}${unknown.suggestion ? `; did you mean ${[...parent, unknown.suggestion].join(".")}?` : ` (known here: ${unknown.known.join(", ")})`}. Fix or remove it; config/README.md lists every key.`,
      { target: shown },
    );
  }
  const r = configSchema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.map(String);
  const key = path.join(".") || "(root)";
  let value: unknown = raw;
  for (const p of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[p as PropertyKey];
  const { shown, note } = shownConfigValue(path, value);
  throw new StationError(
    "ConfigInvalid",
    `Config ${source}: ${key} = ${shown}: ${scrubSecrets(issue.message)}${note ? `. ${note}` : ""}.`,
    { target: key },
  );
}

export function loadConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new StationError(
      "ConfigInvalid",
      `Cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? e}. Pass --config <file>.`,
      { cause: e },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    // Where, never what: some Node versions quote the text around the error, which may be a key.
    throw new StationError("ConfigInvalid", `Config ${file} is not valid JSON ${jsonErrorPlace(text, e)}.`);
  }
  return parseConfig(raw, file);
}

/** "at line L, column C" of a JSON.parse error, from the position V8 reports. */
export function jsonErrorPlace(text: string, e: unknown): string {
  const pos = /position (\d+)/.exec(String((e as Error)?.message))?.[1];
  if (pos === undefined) return "(check it with: python3 -m json.tool FILE)";
  const before = text.slice(0, Number(pos)).split("\n");
  return `at line ${before.length}, column ${before.at(-1)!.length + 1}`;
}
