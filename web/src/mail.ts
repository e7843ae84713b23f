// The email view: pending confirmations and the audit log.
import { withReauth } from "./passkeys";
import { api, app, errorText, h, who, type Me } from "./ui";

// ---- email bridge ----------------------------------------------------------

type Pending = { id: string; session: string; command: string; flags: string[]; from: string; expires_ms: number };
type AuditEntry = {
  ts_ms: number;
  message_id: string;
  from?: string;
  user?: string;
  session?: string;
  decision: string;
  reason: string;
  command?: string;
  flags?: string[];
};

// Pending confirmations (with Confirm buttons) and the audit log: every
// inbound message and its decision, kept live by the daemon's mail events.
// `focus` highlights one pending command (the link in a confirmation mail).
// Returns the view's cleanup.
export function mailView(me: Me, focus?: string): (() => void) | null {
  const err = h("div", { class: "error", id: "mail-error" });
  const pendingBox = h("div", { class: "pending", id: "pending" });
  const table = h("table", { class: "audit", id: "audit" });
  const canWrite = me.role !== "read-only";
  const header = h(
    "header",
    { class: "topbar" },
    h("div", { class: "brand" }, h("a", { href: "#/", class: "back" }, "← Sessions"), h("span", { class: "title" }, "Email")),
    who(me, h("button", { id: "mail-refresh", onclick: () => void refresh() }, "Refresh")),
  );
  if (!me.mail) {
    // Off: say so, and how to turn it on.
    app.replaceChildren(
      h(
        "div",
        {},
        header,
        h(
          "main",
          { class: "dash" },
          h("h2", {}, "Email is off"),
          h(
            "p",
            { class: "sub", id: "mail-off" },
            "This daemon's config has no [mail] section, so no commands are read from email. To turn it on, add [mail] (its address, how mail arrives and how replies are sent; see the README's Email section), check it with `tmuxd check-config`, and reload the daemon.",
          ),
        ),
      ),
    );
    return null;
  }
  app.replaceChildren(
    h(
      "div",
      {},
      header,
      h(
        "main",
        { class: "dash" },
        h("h2", {}, "Waiting for confirmation"),
        err,
        pendingBox,
        h("h2", {}, "Audit log"),
        h("div", { class: "sub" }, "Every message the bridge received, and what it decided."),
        table,
      ),
    ),
  );
  // A button that confirms or cancels pending command `id`.
  function decide(id: string, action: "confirm" | "cancel", cls: string, label: string): HTMLElement {
    const onclick = async () => {
      const r = await withReauth(() => api("POST", `/api/mail/pending/${id}/${action}`));
      if (!r.ok) err.textContent = await errorText(r);
      refresh();
    };
    return h("button", { class: cls, onclick }, label);
  }
  async function refresh(): Promise<void> {
    const [p, l] = await Promise.all([api("GET", "/api/mail/pending"), api("GET", "/api/mail/log?limit=200")]);
    if (!p.ok || !l.ok) {
      err.textContent = await errorText(p.ok ? l : p);
      return;
    }
    err.textContent = "";
    const pending: Pending[] = await p.json();
    const log: AuditEntry[] = await l.json();
    pendingBox.replaceChildren(
      ...(pending.length
        ? pending.map((x) =>
            h(
              "div",
              { class: x.id === focus ? "card focus" : "card", "data-id": x.id },
              h("div", { class: "card-head" }, h("strong", {}, x.session), h("span", { class: "sub" }, ` from ${x.from}, expires ${new Date(x.expires_ms).toLocaleTimeString()}`)),
              h("pre", { class: "command" }, x.command),
              h("div", { class: "sub" }, x.flags.length ? `Risk flags: ${x.flags.join(", ")}` : "Risk flags: none"),
              canWrite
                ? h(
                    "div",
                    { class: "pending-actions" },
                    decide(x.id, "confirm", "primary", "Confirm and type it"),
                    decide(x.id, "cancel", "cancel", "Cancel"),
                  )
                : null,
            ),
          )
        : [h("div", { class: "sub" }, focus ? "This command is no longer waiting (confirmed, cancelled or expired)." : "Nothing is waiting.")]),
    );
    table.replaceChildren(
      h("tr", {}, ...["Time", "Decision", "Session", "From", "Reason", "Command"].map((t) => h("th", {}, t))),
      ...log
        .slice()
        .reverse()
        .map((e) =>
          h(
            "tr",
            { class: `d-${e.decision}` },
            h("td", {}, new Date(e.ts_ms).toLocaleString()),
            h("td", {}, e.decision),
            h("td", {}, e.user ? `${e.user}/${e.session ?? ""}` : "-"),
            h("td", {}, e.from ?? "-"),
            h("td", {}, e.reason),
            h("td", {}, e.command ?? ""),
          ),
        ),
    );
  }
  // The daemon says when pending commands or the log change (its first
  // event at once): each one reads them again. No polling.
  const events = new EventSource("/api/mail/events");
  events.addEventListener("mail", () => void refresh());
  return () => events.close();
}
