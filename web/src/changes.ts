// What changed in the session's workspace (per file, with its patch) and
// its snapshots (why each was taken, what changed after it, roll back).
import { api, errorText, h } from "./ui";

type FileDiff = { path: string; status: string; patch: string; truncated: boolean };
type Diff = { base: string; files: FileDiff[]; truncated: boolean };
type Snapshot = { id: string; time_ms: number; why: string; changed: string[] };

// A patch with its added and removed lines marked.
function patchView(text: string): HTMLElement {
  const pre = h("pre", { class: "patch" });
  for (const line of text.split("\n")) {
    const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : line.startsWith("@@") ? "hunk" : "";
    pre.append(h("span", cls ? { class: cls } : {}, line), "\n");
  }
  return pre;
}

export async function changesView(id: string, into: HTMLElement, status: HTMLElement): Promise<void> {
  const r = await api("GET", `/api/sessions/${id}/diff`);
  if (!r.ok) {
    status.textContent = await errorText(r);
    into.replaceChildren();
    return;
  }
  const d: Diff = await r.json();
  status.textContent = d.files.length ? `Compared with ${d.base}.` : `Nothing changed since ${d.base}.`;
  into.replaceChildren(
    ...d.files.map((f) =>
      h(
        "details",
        { class: "change", "data-path": f.path },
        h("summary", {}, h("span", { class: `change-status ${f.status}` }, f.status), " ", f.path),
        f.patch ? patchView(f.patch) : h("div", { class: "sub" }, f.status === "deleted" ? "Deleted." : "No text to show."),
        f.truncated ? h("div", { class: "sub" }, "The rest of this file's changes is left out (too long).") : null,
      ),
    ),
    d.truncated ? h("div", { class: "sub" }, "More changes than shown (too long).") : "",
  );
}

export async function snapshotsView(id: string, canWrite: boolean, into: HTMLElement, status: HTMLElement): Promise<void> {
  // Redrawn after an action, whose outcome is said after the redraw (the
  // redraw clears the status).
  const reload = () => snapshotsView(id, canWrite, into, status);
  const r = await api("GET", `/api/sessions/${id}/snapshots`);
  if (!r.ok) {
    status.textContent = await errorText(r);
    return;
  }
  const list: Snapshot[] = await r.json();
  const take = h(
    "button",
    {
      id: "snapshot-take",
      onclick: async () => {
        const t = await api("POST", `/api/sessions/${id}/snapshots`);
        const said = t.ok ? `Snapshot ${(await t.json()).id} taken.` : await errorText(t);
        await reload();
        status.textContent = said;
      },
    },
    "Take a snapshot now",
  );
  status.textContent = list.length ? "" : "No snapshots yet.";
  into.replaceChildren(
    canWrite ? take : "",
    ...list
      .slice()
      .reverse()
      .map((s) =>
        h(
          "div",
          { class: "snapshot", "data-snapshot": s.id },
          h("div", {}, h("code", {}, s.id), " ", h("span", { class: "sub" }, new Date(s.time_ms).toLocaleString())),
          h("div", { class: "why" }, s.why),
          s.changed.length ? h("div", { class: "sub" }, `then changed: ${s.changed.join(", ")}`) : null,
          canWrite
            ? h(
                "button",
                {
                  class: "danger",
                  onclick: async () => {
                    if (!confirm(`Put the workspace back to snapshot ${s.id}? Its present state is kept as a snapshot first.`)) return;
                    const b = await api("POST", `/api/sessions/${id}/snapshots/${s.id}/rollback`);
                    const said = b.ok
                      ? `Back at ${s.id}; the state before is snapshot ${(await b.json()).before.id}.`
                      : await errorText(b);
                    await reload();
                    status.textContent = said;
                  },
                },
                "Roll back to this",
              )
            : null,
        ),
      ),
  );
}
