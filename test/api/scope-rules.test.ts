/** The pure scope rules: exact (case-insensitive) matches only, never prefixes or patterns. */
import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/api/auth.js";
import { allowed, parseScopeString, scopePath, visibleResourceGroups } from "../../src/api/scope.js";

const customer = (scopes: Principal["scopes"]): Principal => ({ name: "c", role: "customer", scopes });

describe("scope rules", () => {
  it("a subscription grant covers its groups and jobs; a group grant only that group", () => {
    const sub = customer([{ subscriptionId: "Sub-A" }]);
    expect(allowed(sub, { subscriptionId: "sub-a", resourceGroup: "any", jobName: "j" })).toBe(true);
    expect(allowed(sub, { subscriptionId: "sub-ab" })).toBe(false);
    expect(allowed(sub, { subscriptionId: "sub-" })).toBe(false);
    expect(allowed(sub, { subscriptionId: "sub-a/../sub-b" })).toBe(false);
    const rg = customer([{ subscriptionId: "sub-a", resourceGroup: "RG-1" }]);
    expect(allowed(rg, { subscriptionId: "SUB-A", resourceGroup: "rg-1", jobName: "j" })).toBe(true);
    expect(allowed(rg, { subscriptionId: "sub-a", resourceGroup: "rg-10" })).toBe(false);
    expect(allowed(rg, { subscriptionId: "sub-b", resourceGroup: "rg-1" })).toBe(false);
    // Listing the subscription is allowed (and narrowed), the job routes of other groups are not.
    expect(allowed(rg, { subscriptionId: "sub-a" })).toBe(true);
    expect(visibleResourceGroups(rg, "sub-a")).toEqual(["rg-1"]);
    expect(visibleResourceGroups(sub, "sub-a")).toBeUndefined();
    expect(visibleResourceGroups(customer([]), "sub-a")).toEqual([]);
    expect(allowed(customer([]), { subscriptionId: "sub-a" })).toBe(false);
    expect(
      allowed({ name: "o", role: "operator", scopes: [] }, { subscriptionId: "x", resourceGroup: "y" }),
    ).toBe(true);
  });

  it("parses ARM scope strings from tokens and refuses anything else", () => {
    expect(parseScopeString("/subscriptions/s1")).toEqual({ subscriptionId: "s1" });
    expect(parseScopeString("/subscriptions/s1/resourceGroups/rg")).toEqual({
      subscriptionId: "s1",
      resourceGroup: "rg",
    });
    expect(parseScopeString("s1")).toEqual({ subscriptionId: "s1" });
    for (const bad of [
      "/",
      "*",
      "/subscriptions/*",
      "/subscriptions/s1/resourceGroups/rg/providers/x",
      "../s",
      "",
    ])
      expect(parseScopeString(bad), bad).toBeUndefined();
    expect(scopePath({ subscriptionId: "s", resourceGroup: "g", jobName: "j" })).toBe(
      "/subscriptions/s/resourceGroups/g/providers/Microsoft.ImportExport/jobs/j",
    );
  });
});
