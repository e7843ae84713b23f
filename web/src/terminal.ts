// The terminal view: xterm.js over the session's WebSocket, with the size
// policy's Fit, scrollback, a phone's quick keys and prompt composer.
import { Terminal } from "@xterm/xterm";
import { Unicode11Addon } from "@xterm/addon-unicode11";
import { FitAddon } from "@xterm/addon-fit";
import { ClipboardAddon } from "@xterm/addon-clipboard";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { api, errorText, h, app, questionCard, type Question } from "./ui";
import { filesPanel } from "./files";

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

export function terminalView(id: string): () => void {
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
  // The workspace: browse, download, upload (also by drop and paste).
  const files = filesPanel(id, () => !readOnly, (text) => term.input(text, true), () => term.focus());
  const filesButton = h(
    "button",
    { class: "fit", id: "files-open", title: "Files in the session's workdir: download, upload", onclick: () => files.open() },
    "Files",
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
        filesButton,
        historyButton,
        fitButton,
        conn,
      ),
      host,
      composer,
      keys,
      history,
      files.el,
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
      sendVisible();
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
  // Files dropped on the page, or pasted (a screenshot), are uploaded.
  const view = app.firstElementChild as HTMLElement;
  view.addEventListener("dragover", (e) => {
    if (e.dataTransfer?.types.includes("Files")) e.preventDefault();
  });
  view.addEventListener("drop", (e) => {
    const dropped = [...(e.dataTransfer?.files ?? [])];
    if (!dropped.length) return;
    e.preventDefault();
    void files.upload(dropped);
  });
  view.addEventListener(
    "paste",
    (e) => {
      const pasted = [...(e.clipboardData?.files ?? [])];
      if (!pasted.length) return;
      e.preventDefault();
      e.stopPropagation();
      void files.upload(pasted);
    },
    true,
  );
  const onResize = () => fit.fit();
  // Whether this page is on screen: the daemon sends no push notification
  // about a session someone is looking at.
  function sendVisible(): void {
    sendControl({ type: "visible", visible: document.visibilityState === "visible" });
  }
  const onShow = () => {
    sendVisible();
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

  return () => {
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
