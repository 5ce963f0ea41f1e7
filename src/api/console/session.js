// The console's session: the operator token (sessionStorage only, sent only as a header), the
// state the push stream keeps current, and the one way the page calls the station.

const TOKEN_KEY = "drive-station.operatorToken";

export const state = { drives: [], station: {}, jobs: [], notices: [] };

export const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  /** Set by the page: what to do when the station refuses the token. */
  refused: (_message) => {},
  keep(token) {
    this.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export async function api(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      authorization: `Bearer ${session.token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) session.refused("The token was refused: sign in again.");
  if (!res.ok) throw new Error(data?.error?.message ?? `${res.status} ${res.statusText}`);
  return data;
}

/** The job a notice or a drive names, as the stream last sent it. */
export const jobOf = (key) =>
  key && state.jobs.find((j) => j.name === key.name && j.subscriptionId === key.subscriptionId);

export const jobPath = (j) =>
  `/station/v1/subscriptions/${encodeURIComponent(j.subscriptionId)}/resourceGroups/${encodeURIComponent(j.resourceGroup)}/jobs/${encodeURIComponent(j.name)}`;
