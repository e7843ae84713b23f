// The tmuxd page: login, a dashboard of sessions, and a terminal per session.
// Routes live in the URL hash: #/login, #/ (dashboard), #/s/USER/SESSION.
import "./style.css";
import { mailView } from "./mail";
import { ago, api, app, brand, errorText, h, questionCard, who, type Me, type Question, type Session } from "./ui";
import { Terminal } from "@xterm/xterm";
import { Unicode11Addon } from "@xterm/addon-unicode11";
// The terminal's font, shipped with the page (inlined into app.css): the
// same glyphs and metrics on every client, underscores included.
import "@fontsource/jetbrains-mono/400.css";
import "@fontsource/jetbrains-mono/700.css";
import { FitAddon } from "@xterm/addon-fit";
import { ClipboardAddon } from "@xterm/addon-clipboard";
import { WebLinksAddon } from "@xterm/addon-web-links";
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
  const submit = h("button", { class: "primary", type: "submit", id: "login-submit" }, "Sign in");
  const form = h(
    "form",
    {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        err.textContent = "";
        const r = await api("POST", "/api/login", { token: token.value.trim() });
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
        who(me, me.mail ? h("a", { href: "#/m", class: "button-link", id: "mail-link" }, "Email") : null),
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
  function render(sessions: Session[]): void {
    // A success clears an earlier error.
    err.textContent = "";
    if (sessions.length === 0) {
      cards.clear();
      list.replaceChildren(h("div", { class: "empty" }, "No sessions yet."));
      return;
    }
    const els = sessions.map((s) => {
      const json = JSON.stringify(s);
      const kept = cards.get(s.id);
      if (kept && kept.json === json) return kept.el;
      const el = card(s);
      cards.set(s.id, { json, el });
      return el;
    });
    for (const id of [...cards.keys()]) if (!sessions.some((s) => s.id === id)) cards.delete(id);
    list.replaceChildren(...els);
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

// ---- terminal ------------------------------------------------------------

const TERMINAL_FONT = '"JetBrains Mono", monospace';

// The quick keys: a label and what the key sends ("cursor:X" is an arrow,
// whose sequence depends on the program's cursor-key mode).
const QUICK_KEYS: [string, string][] = [
  ["Esc", "\x1b"],
  ["Tab", "\t"],
  ["^C", "\x03"],
  ["^D", "\x04"],
  ["←", "cursor:D"],
  ["↑", "cursor:A"],
  ["↓", "cursor:B"],
  ["→", "cursor:C"],
  ["⏎", "\r"],
  ["1", "1"],
  ["2", "2"],
  ["3", "3"],
  ["y", "y"],
  ["n", "n"],
];

function keySequence(seq: string, applicationCursor: boolean): string {
  if (!seq.startsWith("cursor:")) return seq;
  return (applicationCursor ? "\x1bO" : "\x1b[") + seq.slice(7);
}

function terminalView(id: string): void {
  const conn = h("span", { class: "conn connecting", id: "conn" }, "connecting");
  // Scrollback: the session's history as tmux keeps it, in a terminal of
  // its own over the live one; scrolling never sends the agent a key.
  const historyHost = h("div", { class: "history-host" });
  const history = h(
    "div",
    { class: "history", id: "history", hidden: "" },
    h(
      "div",
      { class: "history-bar" },
      h("span", {}, "History (scroll; Esc returns)"),
      h("button", { class: "fit", id: "live", onclick: () => closeHistory() }, "Back to live ↓"),
    ),
    historyHost,
  );
  let historyTerm: Terminal | null = null;
  // Keys a phone keyboard lacks, and a composer for prompts: both go
  // through the terminal's own input (as if typed; a paste is one
  // bracketed paste when the program asked for that).
  const keys = h("div", { class: "keys", id: "keys" });
  // Pressing a key button leaves the focus in the terminal: no focus-out
  // and focus-in reports around the key (tmux would read an Esc followed
  // at once by a focus report as one Meta key), and a phone's keyboard
  // stays open.
  keys.addEventListener("mousedown", (e) => e.preventDefault());
  keys.addEventListener("pointerdown", (e) => e.preventDefault());
  for (const [label, seq] of QUICK_KEYS) {
    keys.append(
      h("button", { "data-key": label, onclick: () => term.input(keySequence(seq, term.modes.applicationCursorKeysMode), true) }, label),
    );
  }
  const composerText = h("textarea", { id: "composer-text", rows: "4", placeholder: "Write a prompt; Send types it as one paste, then Enter" });
  const composer = h(
    "div",
    { class: "composer", id: "composer", hidden: "" },
    composerText,
    h(
      "div",
      { class: "composer-actions" },
      h("button", { onclick: () => showComposer(false) }, "Cancel"),
      h(
        "button",
        {
          class: "primary",
          id: "composer-send",
          onclick: () => {
            if (readOnly) return;
            if (!ws || ws.readyState !== WebSocket.OPEN) return notSent();
            term.paste(composerText.value.replace(/\r?\n/g, "\r"));
            term.input("\r", true);
            composerText.value = "";
            showComposer(false);
          },
        },
        "Send",
      ),
    ),
  );
  keys.append(
    h("button", { "data-key": "compose", onclick: () => showComposer(composer.hidden) }, "✎"),
  );
  const historyButton = h(
    "button",
    { class: "fit", id: "history-open", title: "Scroll back through the session's output", onclick: () => void openHistory() },
    "History",
  );
  // The session's window takes this terminal's size (the size policy:
  // watching never resizes anyone; typing or Fit does).
  const fitButton = h(
    "button",
    {
      class: "fit",
      id: "fit",
      title: "Size the session's window to this terminal",
      onclick: () => {
        sendControl({ type: "fit" });
        term.focus();
      },
    },
    "Fit",
  );
  const ro = h("span", { class: "badge-ro", id: "read-only", hidden: "" }, "READ-ONLY");
  const host = h("div", { class: "term-host", id: "terminal" });
  const banner = h("div", { class: "banner", hidden: "" });
  const asks = h("div", { class: "term-question", id: "question", hidden: "" });
  app.replaceChildren(
    h(
      "div",
      { class: "term-view" },
      h(
        "div",
        { class: "term-bar" },
        h("a", { class: "back", href: "#/" }, "← Sessions"),
        h("span", { class: "title" }, id),
        ro,
        h("span", { class: "spacer" }),
        historyButton,
        fitButton,
        conn,
      ),
      host,
      composer,
      keys,
      history,
      banner,
      asks,
    ),
  );

  const term = new Terminal({
    cursorBlink: true,
    fontFamily: TERMINAL_FONT,
    fontSize: 14,
    scrollback: 5000,
    theme: { background: "#000000" },
    // Unicode 11 widths (emoji and wide symbols take two cells).
    allowProposedApi: true,
  });
  term.loadAddon(new Unicode11Addon());
  term.unicode.activeVersion = "11";
  // The wheel over the live terminal opens the history instead of being
  // turned into arrow keys (tmux's screen has no scrollback of its own).
  term.attachCustomWheelEventHandler((ev) => {
    if (ev.deltaY < 0) void openHistory();
    return false;
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.loadAddon(new ClipboardAddon());
  term.loadAddon(new WebLinksAddon());
  term.open(host);
  fit.fit();
  term.focus();
  (window as unknown as { tmuxdTerm: Terminal }).tmuxdTerm = term;

  const enc = new TextEncoder();
  let ws: WebSocket | null = null;
  let readOnly = false;
  let closed = false;
  let retry = 0;
  let retryTimer = 0;

  async function openHistory(): Promise<void> {
    if (historyTerm) return;
    const r = await api("GET", `/api/sessions/${id}/history?lines=10000`);
    if (closed || historyTerm) return;
    if (!r.ok) {
      banner.textContent = await errorText(r);
      banner.hidden = false;
      return;
    }
    const text = (await r.text()).replace(/\s+$/, "");
    if (closed || historyTerm) return;
    const t = new Terminal({
      fontFamily: TERMINAL_FONT,
      fontSize: 14,
      scrollback: 60000,
      disableStdin: true,
      cols: term.cols,
      rows: term.rows,
      theme: { background: "#000000" },
      allowProposedApi: true,
    });
    t.loadAddon(new Unicode11Addon());
    t.unicode.activeVersion = "11";
    historyTerm = t;
    history.hidden = false;
    t.open(historyHost);
    (window as unknown as { tmuxdHistory: Terminal }).tmuxdHistory = t;
    // Hide its cursor; end a few lines above the live screen's bottom.
    t.write("\x1b[?25l" + text.replace(/\n/g, "\r\n"), () => t.scrollLines(-3));
    t.focus();
  }
  // The terminal gives the composer its room (and takes it back).
  function showComposer(show: boolean): void {
    composer.hidden = !show;
    fit.fit();
    if (show) composerText.focus();
    else term.focus();
  }
  function closeHistory(): void {
    historyTerm?.dispose();
    historyTerm = null;
    history.hidden = true;
    term.focus();
  }
  history.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeHistory();
  });

  function setConn(state: "connecting" | "connected" | "offline", text: string): void {
    conn.className = `conn ${state}`;
    conn.textContent = text;
    // While not connected the terminal is visibly stale.
    host.classList.toggle("stale", state !== "connected");
  }
  // Keys typed while not connected are not sent: say so.
  function notSent(): void {
    banner.textContent = "Not connected: what you type is not sent until the terminal reconnects.";
    banner.hidden = false;
  }
  function sendControl(msg: object): void {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }
  function connect(): void {
    if (closed || (ws && ws.readyState <= WebSocket.OPEN)) return;
    window.clearTimeout(retryTimer);
    setConn("connecting", "connecting");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const sock = new WebSocket(`${proto}//${location.host}/ws/sessions/${id}?cols=${term.cols}&rows=${term.rows}`);
    sock.binaryType = "arraybuffer";
    ws = sock;
    sock.onopen = () => {
      retry = 0;
      banner.hidden = true;
      term.reset();
      setConn("connected", "connected");
      sendControl({ type: "resize", cols: term.cols, rows: term.rows });
    };
    sock.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        const msg = JSON.parse(ev.data);
        if (msg.type === "hello" || msg.type === "agent") {
          if (msg.type === "hello") {
            readOnly = !!msg.read_only;
            ro.hidden = !readOnly;
            fitButton.hidden = readOnly;
            keys.hidden = readOnly;
          }
          const q: Question | null = msg.question ?? null;
          if (q === null) asks.hidden = true;
          else if (asks.hidden || asks.firstElementChild?.getAttribute("data-question") !== q.id) {
            asks.replaceChildren(questionCard(id, q, !readOnly, () => term.focus()));
            asks.hidden = false;
          }
        } else if (msg.type === "exit") {
          banner.textContent = `Session ended: ${msg.reason}`;
          banner.hidden = false;
        }
      } else {
        term.write(new Uint8Array(ev.data));
      }
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      if (ev.code === 4401) {
        location.hash = "#/login";
        return;
      }
      if (ev.code === 4404 || ev.code === 4403) {
        setConn("offline", "no such session");
        banner.textContent = "This session does not exist (or is not yours).";
        banner.hidden = false;
        return;
      }
      if (closed) return;
      const delay = Math.min(10000, 500 * 2 ** retry++);
      setConn("offline", `reconnecting in ${Math.round(delay / 1000)}s`);
      retryTimer = window.setTimeout(connect, delay);
    };
  }

  term.onData((d) => {
    if (readOnly) return;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    else notSent();
  });
  term.onBinary((d) => {
    if (readOnly) return;
    if (!ws || ws.readyState !== WebSocket.OPEN) return notSent();
    const bytes = new Uint8Array(d.length);
    for (let i = 0; i < d.length; i++) bytes[i] = d.charCodeAt(i) & 0xff;
    ws.send(bytes);
  });
  term.onResize(({ cols, rows }) => sendControl({ type: "resize", cols, rows }));
  // The tab's title follows the program's (tmux's set-titles).
  term.onTitleChange((t) => {
    document.title = t ? `${t} · ${id}` : `${id} · tmuxd`;
  });
  document.title = `${id} · tmuxd`;
  const onResize = () => fit.fit();
  const onShow = () => {
    if (document.visibilityState === "visible") {
      retry = 0;
      connect();
    }
  };
  window.addEventListener("resize", onResize);
  window.addEventListener("pageshow", onShow);
  document.addEventListener("visibilitychange", onShow);
  window.addEventListener("online", onShow);
  connect();

  cleanup = () => {
    closed = true;
    window.clearTimeout(retryTimer);
    window.removeEventListener("resize", onResize);
    window.removeEventListener("pageshow", onShow);
    document.removeEventListener("visibilitychange", onShow);
    window.removeEventListener("online", onShow);
    ws?.close(1000);
    historyTerm?.dispose();
    term.dispose();
    document.title = "tmuxd";
  };
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
    await mailView(me, mail[1]);
    return;
  }
  const m = hash.match(/^#\/([st])\/([a-z0-9][a-z0-9_-]{0,31})\/([a-z0-9][a-z0-9_-]{0,31})$/);
  if (m && m[1] === "s") terminalView(`${m[2]}/${m[3]}`);
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
