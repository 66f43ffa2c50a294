// Before Start: the payload shape (flat / seed / an uploaded template) and the
// merge preview from POST /api/merge-preview: records after de-duplication,
// duplicates and why they matched, the first merged rows, the JSON body the
// target receives for row 1, and the destination's capacity when it is known.
// Uses app.js's helpers (el, $, api, postJson, state). Text only through
// textContent.
"use strict";

const mergePreview = {
  seq: 0,             // answers to older requests are dropped
  timer: null,
  shown: null,        // request (as JSON) of the preview on screen
  template: null,     // {id, name, size} of the uploaded template
};

const payloadShape = () => document.querySelector("input[name=payload]:checked").value;

// The payload part of a job or preview request (merge only sends nothing: flat).
function payloadFields() {
  if (document.querySelector("input[name=mode]:checked").value !== "deliver") return { payload: "flat" };
  if (payloadShape() !== "template") return { payload: payloadShape() };
  return { payload: "template", template: mergePreview.template ? mergePreview.template.id : null };
}

function previewRequest() {
  const ready = state.files.filter((f) => f.upload && !f.error);
  if (!ready.length || state.files.some((f) => f.busy)) return null;
  const urls = formMode() === "deliver" ? webhookUrls() : [];
  return { uploads: ready.map((f) => f.upload.id), table_type: tableType(), mapping: state.overrides, ...payloadFields(),
    ...(urls.length ? { webhook_url: urls } : {}) };
}

// Called whenever files, mapping or payload change; waits for a quiet 300 ms.
function schedulePreview() {
  clearTimeout(mergePreview.timer);
  mergePreview.timer = setTimeout(refreshMergePreview, 300);
}

async function refreshMergePreview() {
  const box = $("#merge-preview");
  const request = previewRequest();
  if (!request) {
    if (!state.files.some((f) => f.busy)) { box.hidden = true; mergePreview.shown = null; }
    return;
  }
  const key = JSON.stringify(request);
  if (key === mergePreview.shown) return;
  const seq = ++mergePreview.seq;
  box.hidden = false;
  box.dataset.state = "loading";
  let content;
  try {
    content = renderMergePreview(await postJson("/api/merge-preview", request));
  } catch (err) {
    content = [el("p", { class: "error-text", role: "alert", text: err.message })];
  }
  if (seq !== mergePreview.seq) return;
  mergePreview.shown = key;
  $("#merge-preview-body").replaceChildren(...content.filter(Boolean));
  box.dataset.state = "ready";
  document.querySelectorAll("#merge-preview .scroll-box").forEach(watchScroll);
}

function renderMergePreview(p) {
  const facts = el("dl", { class: "stats preview-stats" },
    stat("Records after de-duplication", fmtInt(p.rows_out)),
    stat("Rows read", fmtInt(p.rows_in)),
    stat("Duplicates merged", fmtInt(p.duplicates_merged)),
    p.empty_rows ? stat("Empty rows", fmtInt(p.empty_rows)) : null,
    // Known once a webhook URL is given (the destination ledger's counts); null: nothing is shown.
    p.destination_capacity == null ? null
      : stat("Destinations can take", fmtInt(p.destination_capacity), p.destination_capacity < p.rows_out ? "bad" : ""));
  const groups = p.duplicate_groups.map((g) => el("li", {},
    el("span", { class: "dup-sources", text: g.sources.join(" + ") }), ": ", g.reasons.join("; ")));
  const more = p.duplicates_merged - p.duplicate_groups.reduce((n, g) => n + g.sources.length - 1, 0);
  const duplicates = p.duplicates_merged ? [
    el("h4", { text: "Duplicates found and why" }),
    el("ul", { class: "dup-list" }, groups, more > 0 ? el("li", { class: "muted", text: `… and ${fmtInt(more)} more rows merged` }) : null),
  ] : [el("p", { class: "muted", text: "No duplicates found." })];
  const rows = p.sample_rows.length ? [
    el("h4", { text: `First ${p.sample_rows.length} merged rows` }),
    scrollFrame(el("table", { class: "table sample-table" },
      el("thead", {}, el("tr", {}, p.columns.map((c) => el("th", { scope: "col", text: c })))),
      el("tbody", {}, p.sample_rows.map((row) => el("tr", {}, p.columns.map((c) => el("td", { text: row[c] || "" })))))),
    "First merged rows"),
  ] : [];
  const body = p.body_error
    ? el("p", { class: "error-text body-error", role: "alert", text: `Row 1 cannot be sent: ${p.body_error}` })
    : p.body === null ? null
      : scrollFrame(el("pre", { class: "json-body" }, el("code", { text: JSON.stringify(p.body, null, 2) })), "JSON body");
  return [facts, ...duplicates, ...rows,
    el("h4", { text: `JSON body the target receives for row 1${p.body_bytes ? ` (${fmtBytes(p.body_bytes)})` : ""}` }), body,
    p.warnings.length ? el("ul", { class: "warnings" }, p.warnings.map((w) => el("li", { text: w }))) : null];
}

async function uploadTemplate(file) {
  const note = $("#template-note");
  mergePreview.template = null;
  const form = new FormData();
  form.append("table_type", tableType());
  form.append("file", file, file.name);
  try {
    mergePreview.template = await api("/api/templates", { method: "POST", body: form });
    note.textContent = `${mergePreview.template.name} (${fmtBytes(mergePreview.template.size)}) will render each row's body.`;
    note.classList.remove("error-text");
  } catch (err) {
    note.textContent = err.message;
    note.classList.add("error-text");
  }
  schedulePreview();
}

// The payload choice matters only when delivering; the template field only for the template shape.
function showPayloadFields() {
  const delivering = document.querySelector("input[name=mode]:checked").value === "deliver";
  $("#payload-choice").hidden = !delivering;
  $("#template-field").hidden = !delivering || payloadShape() !== "template";
}

function wirePreview() {
  document.querySelectorAll("input[name=payload], input[name=mode]").forEach((radio) => radio.addEventListener("change", () => {
    showPayloadFields();
    schedulePreview();
  }));
  const input = $("#template-input");
  input.addEventListener("change", () => { if (input.files.length) uploadTemplate(input.files[0]); });
}

document.addEventListener("DOMContentLoaded", wirePreview);
