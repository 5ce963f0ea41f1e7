/**
 * Wiring: the API's job service, decorated so that every change a person makes through the API
 * (operator check-in, arrived, resolve ...; a customer shipping a job or editing its drive list)
 * is followed by the dock looking again at the plugged-in drives it may concern. The dock and the
 * transfer engine use the plain service, so their own events never trigger a second look.
 */
import type { JobService } from "../src/jobs/service.js";
import type { JobKey } from "../src/lifecycle/model.js";

const CHANGES = new Set<PropertyKey>(["station", "update", "create"]);

export function reconsiderAfterChanges(
  service: JobService,
  dock: { reconsider(job?: JobKey): void },
): JobService {
  return new Proxy(service, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== "function") return value;
      if (!CHANGES.has(prop)) return value.bind(target);
      return async (key: JobKey, ...rest: unknown[]) => {
        const result = await (value as (...a: unknown[]) => Promise<unknown>).call(target, key, ...rest);
        dock.reconsider(key);
        return result;
      };
    },
  });
}
