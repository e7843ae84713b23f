// The tmuxd page: login, a dashboard of sessions, and a terminal per session.
// Routes live in the URL hash: #/login, #/ (dashboard), #/s/USER/SESSION.
import "./style.css";
import { mailView } from "./mail";
import { ago, api, app, brand, errorText, h, questionCard, who, type Me, type Session } from "./ui";
import { terminalView } from "./terminal";
import { addPasskey, signInWithPasskey } from "./passkeys";
// The terminal's font, shipped with the page (inlined into app.css): the
// same glyphs and metrics on every client, underscores included.
import "@fontsource/jetbrains-mono/400.css";
import "@fontsource/jetbrains-mono/700.css";
import * as AsciinemaPlayer from "asciinema-player";
import "asciinema-player/dist/bundle/asciinema-player.css";

let cleanup: (() => void) | null = null;

function loginView(message = ""): void {
  const token = h("input", {
    type: "password",
    name: "token",
    id: "token",
    placeholder: "alice.…",
    autocomplete: "current-password",
    "aria-label": "Login token",
  });
  const err = h("div", { class: "error", id: "login-error" }, message);
  // Single sign-on, when the server has it.
  const sso = h("p", { id: "sso" }, h("a", { href: "/auth/oidc/login", class: "button-link" }, "Sign in with your organisation"));
  sso.hidden = true;
  const passkey = h(
    "button",
    {
      id: "passkey-login",
      type: "button",
      onclick: async () => {
        err.textContent = "";
        const why = await signInWithPasskey().catch((e: Error) => e.message);
        if (why) err.textContent = why;
        else location.hash = "#/";
      },
    },
    "Sign in with a passkey",
  );
  passkey.hidden = true;
  void api("GET", "/api/auth").then(async (r) => {
    if (!r.ok) return;
    const ways = await r.json();
    sso.hidden = !ways.oidc;
    passkey.hidden = !ways.passkeys;
  });
  const submit = h("button", { class: "primary", type: "submit", id: "login-submit" }, "Sign in");
  const form = h(
    "form",
    {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        err.textContent = "";
        const t = token.value.trim();
        // The token in the header too: a cluster's front router sends the
        // login to the user's node by it (it cannot read the body).
        const r = /^[\x21-\x7e]+$/.test(t)
          ? await fetch("/api/login", {
              method: "POST",
              credentials: "same-origin",
              headers: { "Content-Type": "application/json", Authorization: `Bearer ${t}` },
              body: JSON.stringify({ token: t }),
            })
          : await api("POST", "/api/login", { token: t });
        submit.disabled = false;
        if (r.ok) {
          location.hash = "#/";
        } else {
          err.textContent = await errorText(r);
          token.select();
        }
      },
    },
    token,
    submit,
    err,
  );
  app.replaceChildren(
    h(
      "div",
      { class: "login" },
      h(
        "div",
        { class: "login-card" },
        brand(),
        h("h1", {}, "Sign in to your sessions"),
        h("p", {}, "Paste the login token you got from ", h("code", {}, "tmuxd token USER"), "."),
        form,
        passkey,
        sso,
      ),
    ),
  );
  token.focus();
}

// ---- dashboard -----------------------------------------------------------

async function dashboardView(me: Me, live: () => boolean): Promise<void> {
  const list = h("div", { class: "sessions", id: "sessions" });
  const err = h("div", { class: "error" });
  const canWrite = me.role !== "read-only";
  const admin = me.role === "admin";
  const filter = h("input", {
    type: "search",
    id: "filter",
    placeholder: "filter: user, session, agent, state",
    "aria-label": "Filter sessions",
    oninput: () => render(last),
  });
  const name = h("input", { placeholder: "new session name", id: "new-name", "aria-label": "New session name" });
  const newForm = h(
    "form",
    {
      class: "new-form",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const r = await api("POST", "/api/sessions", { id: `${me.user}/${name.value.trim()}` });
        if (r.ok) {
          name.value = "";
          refresh();
        } else err.textContent = await errorText(r);
      },
    },
    name,
    h("button", { class: "primary", type: "submit" }, "New session"),
  );
  app.replaceChildren(
    h(
      "div",
      {},
      h(
        "header",
        { class: "topbar" },
        brand(),
        who(
          me,
          me.mail ? h("a", { href: "#/m", class: "button-link", id: "mail-link" }, "Email") : null,
          me.passkeys
            ? h(
                "button",
                {
                  id: "passkey-add",
                  onclick: async () => {
                    const why = await addPasskey().catch((e: Error) => e.message);
                    err.textContent = why ? `Passkey not added: ${why}` : "Passkey added: you can sign in with it.";
                  },
                },
                "Add a passkey",
              )
            : null,
        ),
      ),
      h(
        "main",
        { class: "dash" },
        h(
          "div",
          { class: "dash-head" },
          h(
            "div",
            {},
            h("h2", {}, "Sessions"),
            h("div", { class: "sub" }, "Each session is a tmux session running your agent. Open one to attach."),
          ),
          canWrite ? newForm : null,
        ),
        admin ? filter : null,
        err,
        list,
      ),
    ),
  );

  async function refresh(): Promise<void> {
    const r = await api("GET", "/api/sessions");
    if (r.status === 401) {
      location.hash = "#/login";
      return;
    }
    if (!r.ok) {
      err.textContent = await errorText(r);
      return;
    }
    render(await r.json());
  }

  // Each session's card, kept while its data is the same: an update
  // rebuilds only the cards that changed (nothing moves under a finger).
  const cards = new Map<string, { json: string; el: HTMLElement }>();
  let last: Session[] = [];
  function render(sessions: Session[]): void {
    // A success clears an earlier error.
    err.textContent = "";
    last = sessions;
    for (const id of [...cards.keys()]) if (!sessions.some((s) => s.id === id)) cards.delete(id);
    if (sessions.length === 0) {
      list.replaceChildren(h("div", { class: "empty" }, "No sessions yet."));
      return;
    }
    const q = filter.value.trim().toLowerCase();
    const shown = q ? sessions.filter((s) => matches(s, q)) : sessions;
    if (shown.length === 0) {
      list.replaceChildren(h("div", { class: "empty" }, `No session matches “${filter.value.trim()}”.`));
      return;
    }
    const cardOf = (s: Session): HTMLElement => {
      const json = JSON.stringify(s);
      const kept = cards.get(s.id);
      if (kept && kept.json === json) return kept.el;
      const el = card(s);
      cards.set(s.id, { json, el });
      return el;
    };
    if (!admin) {
      list.replaceChildren(...shown.map(cardOf));
      return;
    }
    // An admin sees everyone's sessions: grouped by user, each group
    // headed by what needs a look.
    const users = [...new Set(shown.map((s) => s.user))];
    list.replaceChildren(
      ...users.map((u) => {
        const mine = shown.filter((s) => s.user === u);
        const waiting = mine.filter((s) => s.question && s.state === "running").length;
        const down = mine.filter((s) => s.state !== "running").length;
        const notes = [`${mine.length} session${mine.length === 1 ? "" : "s"}`];
        if (waiting) notes.push(`${waiting} waiting`);
        if (down) notes.push(`${down} not running`);
        return h(
          "section",
          { class: "group", "data-user": u },
          h("h3", {}, u, h("span", { class: "sub" }, ` · ${notes.join(", ")}`)),
          ...mine.map(cardOf),
        );
      }),
    );
  }

  // What the filter looks at: the id, the agent and the states.
  function matches(s: Session, q: string): boolean {
    const states = [`session ${s.state}`, s.agent_state ? `agent ${s.agent_state}` : "", s.question ? "waiting" : ""];
    return [s.id, s.agent_name, ...states].some((t) => t.toLowerCase().includes(q));
  }

  function card(s: Session): HTMLElement {
    const [, session] = s.id.split("/");
    const exit = s.last_exit
      ? s.last_exit.signal !== null
        ? `last exit: signal ${s.last_exit.signal}`
        : `last exit: status ${s.last_exit.status}`
      : null;
    const actions = h(
      "div",
      { class: "actions" },
      h("button", { class: "primary", onclick: () => (location.hash = `#/s/${s.id}`) }, "Open"),
      h("button", { class: "transcript-btn", onclick: () => (location.hash = `#/t/${s.id}`) }, "Transcript"),
    );
    if (canWrite && session !== "main") {
      actions.append(
        h(
          "button",
          {
            class: "danger",
            onclick: async () => {
              if (!confirm(`Kill ${s.id}? Its agent is stopped.`)) return;
              const r = await api("DELETE", `/api/sessions/${s.id}`);
              if (!r.ok) err.textContent = await errorText(r);
              refresh();
            },
          },
          "Kill",
        ),
      );
    }
    if (canWrite && s.restart_due !== null) {
      // An exited agent waiting out its restart backoff.
      actions.prepend(
        h(
          "button",
          {
            class: "restart",
            onclick: async () => {
              const r = await api("POST", `/api/sessions/${s.id}/restart`);
              if (!r.ok) err.textContent = await errorText(r);
            },
          },
          "Restart now",
        ),
      );
    }
    const question = s.question && s.state === "running" ? questionCard(s.id, s.question, canWrite, refresh) : null;
    return h(
      "div",
      { class: question ? "card waiting" : "card", "data-session": s.id },
      question,
      h(
        "div",
        {},
        h(
          "div",
          {},
          h("span", { class: "id" }, s.id),
          s.agent_name ? h("span", { class: "agent-name", title: "the agent's program" }, s.agent_name) : null,
          h("span", { class: `state ${s.state}`, title: "the session" }, `session ${s.state}`),
          s.agent_state && s.state === "running"
            ? h("span", { class: `state agent ${s.agent_state}`, title: "what the agent is doing" }, `agent ${s.agent_state}`)
            : null,
          s.sandbox
            ? h(
                "span",
                {
                  class: "sandbox",
                  title: `sandboxed: writes only to ${s.sandbox.writable.join(", ")} and its own config; network: ${s.sandbox.network}`,
                },
                `sandbox · network ${s.sandbox.network}`,
              )
            : null,
        ),
        h(
          "div",
          { class: "meta" },
          h("span", {}, `${s.viewers} viewer${s.viewers === 1 ? "" : "s"}`),
          h("span", {}, `${s.attached_clients} attached`),
          h("span", {}, `active ${ago(s.last_activity)}`),
          s.restarts ? h("span", {}, `${s.restarts} restart${s.restarts === 1 ? "" : "s"}`) : null,
          exit ? h("span", {}, exit) : null,
          s.restart_due !== null
            ? h("span", { class: "restart-due" }, `restarts at ${new Date(s.restart_due).toLocaleTimeString()}`)
            : null,
        ),
        s.preview.length ? h("pre", { class: "preview", title: "the end of the agent's screen" }, s.preview.join("\n")) : null,
      ),
      actions,
    );
  }

  await refresh();
  // Another view took the page meanwhile: nothing to keep running.
  if (!live()) return;
  // Live: the daemon pushes the sessions whenever they change (no
  // polling); the browser reconnects the stream by itself.
  const events = new EventSource("/api/events");
  events.addEventListener("sessions", (e) => render(JSON.parse((e as MessageEvent).data)));
  cleanup = () => events.close();
}

// ---- transcript ----------------------------------------------------------

// Seconds as m:ss.
function clock(t: number): string {
  const s = Math.floor(t);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function transcriptView(id: string): void {
  const base = `/api/sessions/${id}/transcript`;
  const playerHost = h("div", { class: "player", id: "player" });
  const query = h("input", { placeholder: "search (regular expression)", id: "search", "aria-label": "Search" });
  const results = h("div", { class: "results", id: "results", hidden: "" });
  const err = h("div", { class: "error" });
  const download = (format: string, label: string) =>
    h("a", { class: "button-link", href: `${base}?format=${format}`, download: `${id.replace("/", "-")}.${format === "asciicast" ? "cast" : format === "raw" ? "raw" : "txt"}` }, label);
  const search = h(
    "form",
    {
      class: "new-form",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        err.textContent = "";
        const q = query.value.trim();
        if (!q) {
          results.hidden = true;
          return;
        }
        const r = await api("GET", `${base}?format=text&times=true&grep=${encodeURIComponent(q)}`);
        if (!r.ok) {
          err.textContent = await errorText(r);
          return;
        }
        // Each hit: its time in the replay, a tab, the line; a click plays
        // the replay from there.
        const hits = (await r.text()).split("\n").filter((l) => l.includes("\t"));
        results.replaceChildren(
          ...(hits.length
            ? hits.map((l) => {
                const tab = l.indexOf("\t");
                const t = Number(l.slice(0, tab));
                return h(
                  "a",
                  { class: "hit", href: "#", "data-t": String(t), onclick: (e: Event) => { e.preventDefault(); void player.seek(t).then(() => player.play()); } },
                  h("span", { class: "hit-time" }, clock(t)),
                  l.slice(tab + 1),
                );
              })
            : ["No matching lines."]),
        );
        results.hidden = false;
      },
    },
    query,
    h("button", { type: "submit" }, "Search"),
  );
  app.replaceChildren(
    h(
      "div",
      {},
      h(
        "header",
        { class: "topbar" },
        h("div", { class: "brand" }, h("a", { href: "#/", class: "back" }, "← Sessions"), h("span", { class: "title" }, `${id} · transcript`)),
        h("div", { class: "who" }, download("asciicast", "Download .cast"), download("text", "Text"), download("raw", "Raw")),
      ),
      h("main", { class: "dash" }, h("div", { class: "dash-head" }, h("h2", {}, "Replay"), search), err, results, playerHost),
    ),
  );
  // Sized to the window (controls in view); pauses replay as at most
  // REPLAY_IDLE_LIMIT_S (src/transcript/export.rs), as the hits' times do.
  const player = AsciinemaPlayer.create(`${base}?format=asciicast`, playerHost, {
    fit: "both",
    preload: true,
    idleTimeLimit: 2,
    theme: "asciinema",
  });
  (window as unknown as { tmuxdPlayer: typeof player }).tmuxdPlayer = player;
  cleanup = () => player.dispose();
}

// ---- routing -------------------------------------------------------------

// Each route() owns the page until the next one starts: one that finds a
// later one started while it awaited stops there, so views never overlap
// and no view's cleanup is lost.
let generation = 0;

async function route(): Promise<void> {
  const gen = ++generation;
  const live = () => gen === generation;
  cleanup?.();
  cleanup = null;
  const hash = location.hash || "#/";
  if (hash === "#/login") {
    loginView();
    return;
  }
  const r = await api("GET", "/api/me");
  if (!live()) return;
  if (r.status === 401) {
    location.hash = "#/login";
    return;
  }
  if (!r.ok) {
    const text = await errorText(r);
    if (live()) loginView(text);
    return;
  }
  const me: Me = await r.json();
  if (!live()) return;
  const mail = hash.match(/^#\/m(?:\/([0-9a-f]{16}))?$/);
  if (mail) {
    cleanup = mailView(me, mail[1]);
    return;
  }
  const m = hash.match(/^#\/([st])\/([a-z0-9][a-z0-9_-]{0,31})\/([a-z0-9][a-z0-9_-]{0,31})$/);
  if (m && m[1] === "s") cleanup = terminalView(`${m[2]}/${m[3]}`);
  else if (m) transcriptView(`${m[2]}/${m[3]}`);
  else await dashboardView(me, live);
}

// The terminal measures its cells when it opens: the font first.
Promise.all([
  document.fonts.load('14px "JetBrains Mono"'),
  document.fonts.load('bold 14px "JetBrains Mono"'),
]).finally(() => {
  window.addEventListener("hashchange", route);
  route();
});
