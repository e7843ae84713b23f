// The session's workspace in the terminal view: a panel listing the
// workdir (folders to open, files to download, a folder as .tar.gz), and
// uploads by picking, the phone's camera, dropping or pasting files. An
// upload lands in the uploads directory; the panel offers to type its
// path into the prompt.
import { api, errorText, h } from "./ui";
import { changesView, snapshotsView } from "./changes";

type Entry = { name: string; kind: string; bytes: number; mtime: number };
type Listing = { path: string; entries: Entry[]; truncated: boolean };

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MB`;
  return `${(n / (1 << 30)).toFixed(1)} GB`;
}

export type FilesPanel = {
  el: HTMLElement;
  open(): void;
  upload(files: File[]): Promise<void>;
};

// `insert` types text into the session (as if typed, no Enter).
export function filesPanel(id: string, canWrite: () => boolean, insert: (text: string) => void, onClose: () => void): FilesPanel {
  const base = `/api/sessions/${id}/files`;
  let path = "";
  const where = h("span", { class: "files-where", id: "files-where" });
  const list = h("div", { class: "files-list", id: "files-list" });
  const status = h("div", { class: "files-status", id: "files-status" });
  const picker = h("input", { type: "file", multiple: "", id: "upload-input", hidden: "" });
  const camera = h("input", { type: "file", accept: "image/*", capture: "environment", id: "camera-input", hidden: "" });
  for (const input of [picker, camera]) {
    input.addEventListener("change", () => {
      void upload([...(input.files ?? [])]);
      input.value = "";
    });
  }
  const archive = h("a", { class: "button-link", id: "files-archive", download: "" }, "Download folder (.tar.gz)");
  const archiveZip = h("a", { class: "button-link", id: "files-zip", download: "" }, ".zip");
  const archiveLog = h("a", { class: "button-link", id: "files-with-transcript", download: "", title: "the folder with the session's transcript inside (.tmuxd/)" }, "with transcript");
  const uploadButton = h("button", { class: "primary", id: "files-upload", onclick: () => picker.click() }, "Upload");
  const cameraButton = h("button", { class: "camera", id: "files-camera", onclick: () => camera.click() }, "Photo");
  // Three tabs: the files, what changed, the snapshots.
  const changes = h("div", { class: "changes", id: "changes", hidden: "" });
  const snaps = h("div", { class: "snapshots", id: "snapshots", hidden: "" });
  const browse = h("div", { class: "browse" });
  function tab(which: "files" | "changes" | "snapshots"): void {
    browse.hidden = which !== "files";
    changes.hidden = which !== "changes";
    snaps.hidden = which !== "snapshots";
    where.hidden = which !== "files";
    status.textContent = "";
    for (const b of tabs.children) b.classList.toggle("on", b.getAttribute("data-tab") === which);
    if (which === "files") void show(path);
    if (which === "changes") void changesView(id, changes, status);
    if (which === "snapshots") void snapshotsView(id, canWrite(), snaps, status);
  }
  const tabs = h(
    "div",
    { class: "tabs" },
    h("button", { "data-tab": "files", class: "on", onclick: () => tab("files") }, "Files"),
    h("button", { "data-tab": "changes", id: "tab-changes", onclick: () => tab("changes") }, "Changes"),
    h("button", { "data-tab": "snapshots", id: "tab-snapshots", onclick: () => tab("snapshots") }, "Snapshots"),
  );
  const el = h(
    "div",
    { class: "files", id: "files", hidden: "" },
    h(
      "div",
      { class: "files-bar" },
      tabs,
      where,
      h("span", { class: "spacer" }),
      uploadButton,
      cameraButton,
      h("button", { id: "files-close", onclick: () => close() }, "Close"),
    ),
    status,
    h("div", { class: "browse-wrap" }, browse),
    changes,
    snaps,
    picker,
    camera,
  );
  browse.append(h("div", { class: "files-actions" }, archive, " ", archiveZip, " ", archiveLog), list);

  function close(): void {
    el.hidden = true;
    onClose();
  }

  async function show(dir: string): Promise<void> {
    const r = await api("GET", `${base}?list=true&path=${encodeURIComponent(dir)}`);
    if (!r.ok) {
      status.textContent = await errorText(r);
      return;
    }
    const listing: Listing = await r.json();
    path = listing.path;
    where.textContent = `/${path}`;
    archive.setAttribute("href", `${base}?format=tar.gz&path=${encodeURIComponent(path)}`);
    archiveZip.setAttribute("href", `${base}?format=zip&path=${encodeURIComponent(path)}`);
    archiveLog.setAttribute("href", `${base}?format=tar.gz&transcript=true&path=${encodeURIComponent(path)}`);
    const rows: HTMLElement[] = [];
    if (path) {
      const up = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
      rows.push(h("button", { class: "file dir", "data-name": "..", onclick: () => void show(up) }, "../ (up)"));
    }
    for (const e of listing.entries) {
      const full = path ? `${path}/${e.name}` : e.name;
      if (e.kind === "dir") {
        rows.push(h("button", { class: "file dir", "data-name": e.name, onclick: () => void show(full) }, `${e.name}/`));
      } else if (e.kind === "file") {
        rows.push(
          h(
            "a",
            { class: "file", "data-name": e.name, href: `${base}?path=${encodeURIComponent(full)}`, download: e.name },
            h("span", {}, e.name),
            h("span", { class: "sub" }, size(e.bytes)),
          ),
        );
      } else {
        // Links are never followed, other kinds never read: shown only.
        rows.push(h("div", { class: "file other", "data-name": e.name, title: `a ${e.kind}: not downloadable` }, `${e.name} (${e.kind})`));
      }
    }
    if (listing.truncated) rows.push(h("div", { class: "sub" }, "More entries than shown."));
    if (!listing.entries.length) rows.push(h("div", { class: "sub" }, "Empty folder."));
    list.replaceChildren(...rows);
  }

  async function upload(files: File[]): Promise<void> {
    if (!files.length) return;
    if (!canWrite()) {
      status.textContent = "This view is read-only: uploads are off.";
      el.hidden = false;
      return;
    }
    el.hidden = false;
    const done: string[] = [];
    for (const f of files) {
      status.textContent = `Uploading ${f.name} (${size(f.size)})…`;
      const r = await fetch(`${base}?name=${encodeURIComponent(f.name || "upload")}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/octet-stream" },
        body: f,
      });
      if (!r.ok) {
        status.textContent = `${f.name}: ${await errorText(r)}`;
        await show(path);
        return;
      }
      done.push((await r.json()).path);
    }
    // Offer the paths to the prompt (quoted when they need it).
    const text = done.map((p) => (/^[\w./-]+$/.test(p) ? p : `'${p.replace(/'/g, "'\\''")}'`)).join(" ");
    status.replaceChildren(
      h("span", { id: "uploaded" }, `Uploaded ${done.join(", ")}`),
      h(
        "button",
        {
          id: "insert-path",
          onclick: () => {
            insert(text);
            close();
          },
        },
        "Insert path into prompt",
      ),
    );
    await show(path);
  }

  return {
    el,
    open: () => {
      el.hidden = false;
      uploadButton.hidden = !canWrite();
      cameraButton.hidden = !canWrite();
      tab("files");
    },
    upload,
  };
}
