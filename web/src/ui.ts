// Shared by the page's views: the API, element building, and the pieces
// more than one view shows (question cards, times, the brand).
import { withReauth } from "./passkeys";
export type Me = { user: string; role: "user" | "admin" | "read-only"; mail: boolean; passkeys: boolean };
export type Question = {
  id: string;
  text: string;
  detail: string[];
  options: { key: string; label: string }[];
  asked: number;
};
// The API's JSON, field for field (tests/it/web/page.rs checks these types
// against what the daemon answers).
export type Session = {
  id: string;
  user: string;
  session: string;
  state: string;
  agent_state: string | null;
  agent_profile: string | null;
  question: Question | null;
  agent_pid: number | null;
  viewers: number;
  attached_clients: number;
  last_activity: number | null;
  created: number | null;
  restarts: number;
  last_exit: { status: number | null; signal: number | null; at: number | null } | null;
  agent_name: string;
  preview: string[];
  restart_due: number | null;
  sandbox: { network: string; writable: string[] } | null;
};

export const app = document.getElementById("app")!;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | ((e: Event) => void)> = {},
  ...children: (Node | string | null)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null) el.append(c);
  return el;
}

export async function api(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

export async function errorText(r: Response): Promise<string> {
  try {
    const j = await r.json();
    return j.error || r.statusText;
  } catch {
    return r.statusText || `HTTP ${r.status}`;
  }
}

// A waiting agent's question: what it asks, about what, and one button per
// option. An answer types only if that same question is still on screen.
export function questionCard(sessionId: string, q: Question, canAnswer: boolean, onAnswered: () => void): HTMLElement {
  const status = h("div", { class: "q-status" });
  const buttons = q.options.map((o) =>
    h(
      "button",
      {
        class: o.key === "1" ? "option first" : "option",
        "data-key": o.key,
        onclick: async () => {
          for (const b of buttons) b.disabled = true;
          status.textContent = `Answering ${o.key}…`;
          const r = await withReauth(() => api("POST", `/api/sessions/${sessionId}/answer`, { question: q.id, option: o.key }));
          if (r.ok) {
            status.textContent = `Answered ${o.key}. ${o.label}`;
            onAnswered();
          } else {
            status.textContent = await errorText(r);
            for (const b of buttons) b.disabled = false;
          }
        },
      },
      `${o.key}. ${o.label}`,
    ),
  );
  if (!canAnswer) for (const b of buttons) b.disabled = true;
  return h(
    "div",
    { class: "question", "data-question": q.id },
    h("div", { class: "q-head" }, h("span", { class: "q-who" }, `${sessionId} asks`), h("span", { class: "q-text" }, q.text)),
    q.detail.length ? h("pre", { class: "q-detail" }, q.detail.join("\n")) : null,
    h("div", { class: "q-options" }, ...buttons),
    canAnswer ? null : h("div", { class: "q-status" }, "Read-only: you can see the question, not answer it."),
    status,
  );
}

export function ago(unix: number | null): string {
  if (!unix) return "never";
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function brand(): HTMLElement {
  return h("div", { class: "brand" }, h("span", { class: "logo" }, ">_"), "tmuxd");
}

// Who is signed in, and Sign out: the right of every view's header.
export function who(me: Me, ...extra: (Node | null)[]): HTMLElement {
  const logout = h(
    "button",
    {
      id: "logout",
      onclick: async () => {
        await api("POST", "/api/logout");
        location.hash = "#/login";
      },
    },
    "Sign out",
  );
  return h("div", { class: "who" }, ...extra, h("span", {}, me.user), h("span", { class: "role" }, me.role), logout);
}

// ---- login ---------------------------------------------------------------
