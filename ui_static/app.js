// CSV Merger page: upload, check the mapping, start, watch, cancel, download.
// Plain JS, no build step. User-supplied text (file names, headers) only ever
// reaches the page through textContent, never innerHTML.
"use strict";

const state = {
  config: null,
  files: [],          // {key, name, upload?: preview, error?: string}
  overrides: {},      // header -> canonical field | "ignore" | "keep" (applies to every file)
  selectedJob: null,
  runningJob: null,   // id of the job this page started, until it ends: Start stays disabled meanwhile
  pollTimer: null,
  timersStarted: false,
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiFailure extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 204) return null;
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (response.status === 401) showTokenPanel();
  if (!response.ok) throw new ApiFailure(response.status, body);
  return body;
}

const postJson = (path, data) =>
  api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });

// ---------------------------------------------------------------- formatting
const tableType = () => document.querySelector("input[name=table_type]:checked").value;
const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const DELIMITERS = { ",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe" };

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const fmtTime = (unix) => (unix ? new Date(unix * 1000).toLocaleString() : "–");
const fmtRate = (r) => (r === null || r === undefined ? "–" : `${r.toFixed(1)}/s`);

// ---------------------------------------------------------------- scroll boxes
// A box that scrolls says so: the frame gets data-more="right down" (edge
// shadows in CSS) and a hint naming the direction, until the end is reached.
function scrollFrame(content, label) {
  return el("div", { class: "scroll-frame" },
    el("div", { class: "scroll-box", tabindex: "0", role: "region", "aria-label": label }, content),
    el("span", { class: "scroll-hint", "aria-hidden": "true" }));
}

function updateScroll(box) {
  const frame = box.parentElement;
  const more = [];
  if (box.scrollLeft + box.clientWidth < box.scrollWidth - 1) more.push("right");
  if (box.scrollTop + box.clientHeight < box.scrollHeight - 1) more.push("down");
  frame.dataset.more = more.join(" ");
  const hint = frame.querySelector(".scroll-hint");
  if (hint) hint.textContent = more.length ? `Scroll ${more.map((m) => (m === "right" ? "→" : "↓")).join(" ")} for more` : "";
}

function watchScroll(box) {
  if (!box.dataset.watched) {
    box.dataset.watched = "1";
    box.addEventListener("scroll", () => updateScroll(box), { passive: true });
  }
  updateScroll(box);
}

// ---------------------------------------------------------------- start-up
async function boot() {
  try {
    state.config = await api("/api/config");
  } catch (err) {
    if (err.status !== 401) showFatal(err.message);
    return;
  }
  $("#token-panel").hidden = true;
  $("#app").hidden = false;
  const cfg = state.config;
  $("#rate").value = cfg.defaults.rate;
  $("#burst").value = cfg.defaults.burst;
  $("#chunk-size").value = cfg.defaults.chunk_size;
  $("#limit-note").textContent =
    `Up to ${fmtBytes(cfg.upload_limit_bytes)} per file. Nothing is sent to the webhook until you press Start.`;
  const startsAt = new Date(cfg.next_window_start);
  $("#window-note").textContent =
    `(window ${cfg.delivery_window} ${cfg.timezone}; next start ${startsAt.toLocaleString()})`;
  $("#runner-badge").textContent = cfg.runner === "prefect" ? "Runs on Prefect API" : "Embedded runs";
  refreshHealth();
  refreshJobs();
  if (!state.timersStarted) {  // boot() runs again after the token was entered
    state.timersStarted = true;
    setInterval(refreshJobs, 3000);
    setInterval(refreshHealth, 15000);
  }
}

function showTokenPanel() {
  $("#app").hidden = true;
  $("#token-panel").hidden = false;
  $("#token-input").focus();
}

function showFatal(message) {
  $("#app").hidden = false;
  $("#form-error").textContent = message;
}

async function refreshHealth() {
  const badge = $("#health-badge");
  try {
    await api("/health");
    badge.textContent = "All services up";
    badge.className = "badge badge-ok";
  } catch (err) {
    const down = err.body && err.body.down ? err.body.down.join(", ") : err.message;
    badge.textContent = `Down: ${down}`;
    badge.className = "badge badge-bad";
    badge.title = err.body && err.body.checks ? JSON.stringify(err.body.checks) : "";
  }
}

// ---------------------------------------------------------------- uploads
let fileCounter = 0;

async function addFiles(fileList) {
  const limit = state.config.upload_limit_bytes;
  const uploads = [];
  for (const file of fileList) {
    const entry = { key: `f${++fileCounter}`, name: file.name, busy: true };
    state.files.push(entry);
    if (file.size > limit) {
      Object.assign(entry, { busy: false, error: `${file.name}: file is ${fmtBytes(file.size)}, larger than the upload limit of ${fmtBytes(limit)}` });
      continue;
    }
    uploads.push(uploadOne(entry, file));
  }
  renderFiles();
  await Promise.all(uploads);
}

async function uploadOne(entry, file) {
  const form = new FormData();
  form.append("table_type", tableType());
  form.append("files", file, file.name);
  try {
    const body = await api("/api/uploads", { method: "POST", body: form });
    entry.upload = body.files[0];
    if (Object.keys(state.overrides).length) entry.upload = await previewUpload(entry.upload.id);
  } catch (err) {
    entry.error = err.message;
  }
  entry.busy = false;
  renderFiles();
}

function previewUpload(id) {
  return postJson(`/api/uploads/${id}/preview`, { table_type: tableType(), mapping: state.overrides });
}

// Re-inspect the files (all, or those having `onlyHeader`); returns the first
// mapping error (the files keep their last good preview) or null.
async function refreshPreviews(onlyHeader = null) {
  const targets = state.files.filter((f) => f.upload &&
    (onlyHeader === null || f.upload.columns.some((c) => c.header === onlyHeader)));
  let mappingError = null;
  await Promise.all(targets.map(async (entry) => {
    try {
      entry.upload = await previewUpload(entry.upload.id);
      entry.error = null;
    } catch (err) {
      if (err.body.field === "mapping" || String(err.body.field).startsWith("mapping.")) mappingError ||= err.message;
      else entry.error = err.message;
    }
  }));
  renderFiles();
  return mappingError;
}

async function changeMapping(entry, header, value) {
  const previous = state.overrides[header];
  state.overrides[header] = value;
  const refused = await refreshPreviews(header);
  if (refused) {  // put the last accepted choice back
    if (previous === undefined) delete state.overrides[header];
    else state.overrides[header] = previous;
    await refreshPreviews(header);
  }
  entry.notice = refused;
  entry.noticeOk = false;
  renderFiles();
}

async function removeFile(entry) {
  state.files = state.files.filter((f) => f !== entry);
  renderFiles();
  if (entry.upload) {
    try { await api(`/api/uploads/${entry.upload.id}`, { method: "DELETE" }); } catch { /* expired already */ }
  }
}

function currentChoice(column) {
  if (column.how === "ignored") return "ignore";
  return column.field || "keep";
}

function mappingSelect(entry, column) {
  const fields = state.config.fields[tableType()];
  const select = el("select", {
    "aria-label": `Mapping for column "${column.header || "(empty)"}" in ${entry.name}`,
    "data-header": column.header,
    onchange: (event) => changeMapping(entry, column.header, event.target.value),
  },
  el("option", { value: "keep", text: "Keep as is (own column)" }),
  el("option", { value: "ignore", text: "Ignore this column" }),
  el("optgroup", { label: "Canonical fields" }, fields.map((f) => el("option", { value: f, text: f }))));
  select.value = currentChoice(column);
  return select;
}

function renderFile(entry) {
  const remove = el("button", { type: "button", class: "btn btn-small", onclick: () => removeFile(entry),
    "aria-label": `Remove ${entry.name}` }, "Remove");
  if (entry.busy) {
    return el("article", { class: "file-card", "data-file": entry.name },
      el("div", { class: "file-head" }, el("div", {}, el("div", { class: "file-name", text: entry.name }),
        el("div", { class: "muted", text: "Reading…" }))));
  }
  if (entry.error) {
    return el("article", { class: "file-card error", "data-file": entry.name, role: "alert" },
      el("div", { class: "file-head" }, el("div", { class: "file-name", text: entry.name }), remove),
      el("div", { class: "file-error", text: entry.error }),
      el("div", { class: "file-left-out muted", text: "Left out: this file is not merged or sent." }));
  }
  const u = entry.upload;
  const facts = el("div", { class: "facts" },
    el("span", { class: "fact" }, el("b", {}, "Encoding "), u.encoding),
    u.delimiter ? el("span", { class: "fact" }, el("b", {}, "Delimiter "), DELIMITERS[u.delimiter] || JSON.stringify(u.delimiter)) : null,
    u.preset ? el("span", { class: "fact", title: "A saved mapping preset for files with these headers" },
      el("b", {}, "Preset "), u.preset) : null,
    el("span", { class: "fact" }, el("b", {}, "Rows "), fmtInt(u.rows)),
    el("span", { class: "fact" }, el("b", {}, "Columns "), fmtInt(u.columns.length)),
    el("span", { class: "fact" }, el("b", {}, "Mapped "), `${u.columns.filter((c) => c.field).length} of ${u.columns.length}`),
    el("span", { class: "fact" }, el("b", {}, "Size "), fmtBytes(u.size)),
    u.bad_rows ? el("span", {
      class: "fact badge-warn",
      title: u.bad_row_examples.map((b) => `line ${b.line}: ${b.reason}`).join("\n"),
    }, el("b", {}, "Bad rows "), fmtInt(u.bad_rows)) : null);
  const notice = entry.notice ? el("p", { class: entry.noticeOk ? "file-notice ok" : "file-notice", role: "alert",
    text: entry.notice }) : null;
  const warnings = u.warnings.length
    ? el("ul", { class: "warnings", "aria-label": `Warnings for ${entry.name}` }, u.warnings.map((w) => el("li", { text: w })))
    : null;
  const rows = u.columns.map((c) => el("tr", {},
    el("td", { class: "num", text: String(c.index + 1) }),
    el("td", {}, c.header ? c.header : el("span", { class: "muted", text: "(empty)" })),
    el("td", {}, mappingSelect(entry, c)),
    el("td", {}, el("span", { class: `how how-${c.how}`, text: c.how })),
    el("td", { class: "note", text: c.note || "" })));
  const table = scrollFrame(el("table", { class: "table mapping-table" },
    el("caption", { class: "visually-hidden", text: `Header mapping for ${entry.name}` }),
    el("thead", {}, el("tr", {}, ["#", "Column in file", "Maps to", "Matched by", "Why"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows)), `Header mapping for ${entry.name}`);
  table.classList.add("mapping-wrap");
  return el("article", { class: "file-card", "data-file": entry.name },
    el("div", { class: "file-head" }, el("div", {}, el("div", { class: "file-name", text: entry.name }), facts), remove),
    notice, warnings, table, presetForm(entry));
}

// Save this file's mapping, as shown, for later files with the same headers.
function presetForm(entry) {
  const input = el("input", { type: "text", class: "preset-name", placeholder: "e.g. apollo", maxlength: "64",
    "aria-label": `Preset name for the mapping of ${entry.name}`, value: entry.presetName ?? (entry.upload.preset || ""),
    oninput: (event) => { entry.presetName = event.target.value; } });  // survives re-renders
  const save = async (event) => {
    event.preventDefault();
    try {
      const saved = await postJson("/api/mappings", { name: input.value.trim(), upload_id: entry.upload.id,
        table_type: tableType(), mapping: state.overrides });
      entry.upload.preset = saved.name;
      entry.notice = `Mapping saved as preset "${saved.name}": later files with these headers are mapped this way.`;
      entry.noticeOk = true;
    } catch (err) {
      entry.notice = err.message;
      entry.noticeOk = false;
    }
    renderFiles();
  };
  return el("form", { class: "preset-form", onsubmit: save },
    el("label", {}, "Save this mapping as a preset ", input),
    el("button", { type: "submit", class: "btn btn-small" }, "Save preset"));
}

function renderFiles() {
  $("#file-list").replaceChildren(...state.files.map(renderFile));
  document.querySelectorAll("#file-list .scroll-box").forEach(watchScroll);
  const ready = state.files.filter((f) => f.upload && !f.error);
  const busy = state.files.some((f) => f.busy);
  $("#start-btn").disabled = busy || ready.length === 0 || state.runningJob !== null;
  const bad = state.files.filter((f) => f.error).map((f) => f.name);
  $("#start-note").textContent = state.runningJob ? `Job ${state.runningJob} is running: Start again once it has ended.`
    : busy ? "Reading files…"
    : ready.length === 0 ? "Add at least one file."
    : `${ready.length} file${ready.length > 1 ? "s" : ""}, ${fmtInt(ready.reduce((n, f) => n + f.upload.rows, 0))} rows ready` +
      (bad.length ? ` (left out, see the error${bad.length > 1 ? "s" : ""} above: ${bad.join(", ")})` : "");
  schedulePreview();
}

// ---------------------------------------------------------------- jobs
function formMode() { return document.querySelector("input[name=mode]:checked").value; }
function webhookUrls() { return $("#webhook-url").value.split("\n").map((u) => u.trim()).filter(Boolean); }

async function startJob(event) {
  event.preventDefault();
  const errorBox = $("#form-error");
  errorBox.textContent = "";
  document.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
  const mode = formMode();
  const payload = {
    uploads: state.files.filter((f) => f.upload && !f.error).map((f) => f.upload.id),
    table_type: tableType(),
    mapping: state.overrides,
    mode,
    schedule: document.querySelector("input[name=schedule]:checked").value,
    rate: Number($("#rate").value) || null,
    burst: Number($("#burst").value) || null,
    chunk_size: Number($("#chunk-size").value) || null,
    ...payloadFields(),
  };
  if (mode === "deliver") {
    payload.webhook_url = webhookUrls();
    payload.dry_run = $("#dry-run").checked;
    const token = $("#auth-token").value;
    if (token) payload.auth_token = token;
  }
  $("#start-btn").disabled = true;
  try {
    const job = await postJson("/api/jobs", payload);
    $("#auth-token").value = "";
    state.selectedJob = job.id;
    state.runningJob = job.id;
    renderJobDetail(job);
    $("#job-detail").scrollIntoView({ behavior: "smooth", block: "start" });
    pollJob();
    refreshJobs();
  } catch (err) {
    errorBox.textContent = err.message;
    const field = { webhook_url: "#webhook-url", rate: "#rate", burst: "#burst", chunk_size: "#chunk-size" }[err.body.field];
    if (field) { $(field).setAttribute("aria-invalid", "true"); $(field).focus(); }
  } finally {
    renderFiles();
  }
}

function bar(job, big = false) {
  const pct = job.percent;
  const node = el("div", {
    class: `bar ${job.status}${big ? " bar-big" : ""}`, role: "progressbar",
    "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct),
    "aria-label": `Progress of job ${job.id}`,
  }, el("span"));
  node.firstChild.style.width = `${pct}%`;  // CSSOM, allowed by the page's Content-Security-Policy
  return node;
}

const statusBadge = (job) => el("span", { class: `badge status-${job.status}`, "data-status": job.status, text: job.status });

function stat(label, value, cls = "") {
  return el("div", { class: `stat ${cls}` }, el("dt", { text: label }), el("dd", { text: value }));
}

function renderJobDetail(job) {
  const box = $("#job-detail");
  box.hidden = false;
  const c = job.counts;
  const isDeliver = job.mode !== "merge_only" && !job.dry_run;
  const meta = [
    `${job.files.length} file${job.files.length > 1 ? "s" : ""}: ${job.files.join(", ")}`,
    job.mode === "merge_only" ? "merge only"
      : `${job.dry_run ? "dry run for " : job.mode === "retry" ? "retry of failed rows " : ""}to ${job.target} at ${job.rate}/s (burst ${job.burst}, chunks of ${job.chunk_size})`,
    job.scheduled_for && job.status === "Scheduled" ? `starts ${fmtTime(job.scheduled_for)}` : null,
    job.rows_out !== null ? `${fmtInt(job.rows_in)} rows in, ${fmtInt(job.rows_out)} out, ${fmtInt(job.duplicates_merged)} duplicates merged` : null,
  ].filter(Boolean).join(" · ");
  const actions = el("div", { class: "job-actions" },
    job.has_merged_csv ? el("a", { class: "btn", href: `/api/jobs/${job.id}/merged.csv`, download: "" }, "Download merged CSV") : null,
    job.has_dead_letter ? el("a", { class: "btn", href: `/api/jobs/${job.id}/dead-letter.csv`, download: "" }, "Download dead-letter CSV") : null,
    job.has_dead_letter && ["Completed", "Failed", "Cancelled"].includes(job.status)
      ? el("button", { type: "button", class: "btn", id: "retry-btn", onclick: () => retryJob(job.id) }, "Retry failed rows") : null,
    job.flow_run_url ? el("a", { class: "btn", href: job.flow_run_url, target: "_blank", rel: "noopener" }, "Open flow run in Prefect UI") : null,
    ["Completed", "Failed", "Cancelled"].includes(job.status) ? null
      : el("button", { type: "button", class: "btn btn-danger", onclick: () => cancelJob(job.id), disabled: job.status === "Cancelling" }, "Cancel job"),
    job.expired ? el("span", { class: "muted", text: "Files expired and were deleted." }) : null);
  box.replaceChildren(...[
    el("div", { class: "job-title" }, el("h3", {}, `Job ${job.id}`, statusBadge(job)),
      el("span", { class: "muted", text: `created ${fmtTime(job.created_at)}` })),
    el("p", { class: "job-meta", text: meta }),
    job.error ? el("p", { class: "job-error", role: "alert", text: job.error }) : null,
    el("div", { class: "progress-line" }, bar(job, true), el("span", { class: "percent", "data-percent": String(job.percent), text: `${job.percent}%` })),
    isDeliver ? el("dl", { class: "stats" },
      stat("Delivered", fmtInt(c.delivered)),
      stat("Failed", fmtInt(c.failed), c.failed ? "bad" : ""),
      stat("Remaining", fmtInt(job.remaining)),
      stat("Accepted", c.current_rate ? fmtRate(c.current_rate) : "–"),
      stat(`Limit (learned, at most ${fmtRate(job.rate)})`, fmtRate(c.limit_rate)),
      stat("429s", fmtInt(c.http_429), c.http_429 ? "bad" : ""),
      job.ended_at && job.started_at ? stat("Took", fmtDuration(job.ended_at - job.started_at))
        : stat("ETA", fmtDuration(job.eta_s))) : null,
    isDeliver && job.history.length > 1 ? rateFigure(job, box) : null,
    job.plan ? planBox(job.plan) : null,
    job.destinations.length ? destinationList(job.destinations) : null,
    actions].filter(Boolean));
  box.dataset.job = job.id;
  box.dataset.status = job.status;
}

// The chart of accepted rows/s and the limit, with its legend (chart.js draws the SVG).
function rateFigure(job, box) {
  const width = box.clientWidth - 40;  // the detail box's padding
  return el("figure", { class: "rate-figure" }, rateChart(job.history, job.rate, width),
    el("figcaption", {},
      el("span", { class: "key key-accepted" }, "accepted rows/s"),
      el("span", { class: "key key-limit" }, `limit (learned rate, requests/s; at most ${fmtRate(job.rate)})`)));
}

// One line per destination: "host #hash: 1,234 of 50,000 used, 48,766 left".
function destinationList(destinations) {
  return el("ul", { class: "destinations" }, destinations.map((d) => el("li", {
    text: `${d.label}: ${fmtInt(d.used)}` + (d.ceiling ? ` of ${fmtInt(d.ceiling)} used, ${fmtInt(Math.max(0, d.ceiling - d.used))} left` : " used, no ceiling"),
  })));
}

// A dry run's plan: what a real run would send, skip and dead-letter, and whether it fits.
function planBox(plan) {
  const room = plan.destinations.some((d) => !d.ceiling) ? null
    : plan.destinations.reduce((n, d) => n + Math.max(0, d.ceiling - d.used), 0);
  return el("div", { class: "plan" },
    el("h4", { text: "Dry run: nothing was sent" }),
    el("dl", { class: "stats" },
      stat("Would send", fmtInt(plan.to_send)),
      stat("Already delivered", fmtInt(plan.already_delivered)),
      stat("Already at the destination", fmtInt(plan.already_at_destination)),
      stat("Suppressed", fmtInt(plan.suppressed)),
      stat("Would be dead-lettered", fmtInt(plan.refused.length), plan.refused.length ? "bad" : ""),
      stat("Estimate", fmtDuration(plan.estimate_s)),
      stat("Fits the destinations", room === null || plan.to_send <= room ? "yes" : `no: room for ${fmtInt(room)}`,
        room !== null && plan.to_send > room ? "bad" : "")),
    destinationList(plan.destinations));
}

async function retryJob(id) {
  try {
    const token = $("#auth-token").value;
    const job = await postJson(`/api/jobs/${id}/retry`, token ? { auth_token: token } : {});
    $("#auth-token").value = "";
    state.selectedJob = job.id;
    renderJobDetail(job);
    refreshJobs();
  } catch (err) {
    $("#form-error").textContent = err.message;
  }
  pollJob();
}

async function cancelJob(id) {
  try {
    renderJobDetail(await postJson(`/api/jobs/${id}/cancel`, {}));
  } catch (err) {
    $("#form-error").textContent = err.message;
  }
  pollJob();
}

async function pollJob() {
  clearTimeout(state.pollTimer);
  if (!state.selectedJob) return;
  try {
    const job = await api(`/api/jobs/${state.selectedJob}`);
    renderJobDetail(job);
    noteEnded(job);
    if (["Completed", "Failed", "Cancelled"].includes(job.status)) { refreshJobs(); return; }
  } catch { /* transient; try again */ }
  state.pollTimer = setTimeout(pollJob, 1000);
}

// The job this page started has ended: Start may be pressed again.
function noteEnded(job) {
  if (job.id !== state.runningJob || !["Completed", "Failed", "Cancelled"].includes(job.status)) return;
  state.runningJob = null;
  renderFiles();
}

async function refreshJobs() {
  let body;
  try { body = await api("/api/jobs"); } catch { return; }
  body.jobs.forEach(noteEnded);
  const tbody = $("#job-rows");
  if (!body.jobs.length) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No jobs yet." })));
    return;
  }
  tbody.replaceChildren(...body.jobs.map((job) => el("tr", {
    class: job.id === state.selectedJob ? "selected" : null, tabindex: "0", "data-job": job.id,
    onclick: () => selectJob(job.id),
    onkeydown: (e) => { if (e.key === "Enter") selectJob(job.id); },
  },
  el("td", {}, el("code", { text: job.id })),
  el("td", { text: fmtTime(job.created_at) }),
  el("td", { text: job.files.join(", ") }),
  el("td", { text: job.mode === "merge_only" ? "merge only" : `${job.dry_run ? "dry run" : job.mode} → ${job.target}` }),
  el("td", {}, statusBadge(job)),
  el("td", {}, bar(job)))));
  updateScroll($(".jobs-wrap .scroll-box"));
}

function selectJob(id) {
  state.selectedJob = id;
  pollJob();
  refreshJobs();
}

// ---------------------------------------------------------------- wiring
function wire() {
  window.addEventListener("resize", () => document.querySelectorAll(".scroll-box").forEach(updateScroll));
  watchScroll($(".jobs-wrap .scroll-box"));
  const drop = $("#dropzone");
  const input = $("#file-input");
  input.addEventListener("change", () => { addFiles([...input.files]); input.value = ""; });
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (e) => {
    e.preventDefault(); drop.classList.add("dragover");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("dragover")));
  drop.addEventListener("drop", (e) => { e.preventDefault(); addFiles([...e.dataTransfer.files]); });

  document.querySelectorAll("input[name=table_type]").forEach((radio) => radio.addEventListener("change", () => {
    const fields = state.config.fields[tableType()];
    for (const [header, target] of Object.entries(state.overrides)) {
      if (!fields.includes(target) && !["ignore", "keep"].includes(target)) delete state.overrides[header];
    }
    refreshPreviews();
  }));
  document.querySelectorAll("input[name=mode]").forEach((radio) => radio.addEventListener("change", () => {
    $("#deliver-fields").hidden = formMode() !== "deliver";
    schedulePreview();
  }));
  $("#webhook-url").addEventListener("input", schedulePreview);  // the preview shows the destinations' room
  $("#job-form").addEventListener("submit", startJob);
  $("#token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await postJson("/api/session", { token: $("#token-input").value });
      $("#token-input").value = "";
      $("#token-error").textContent = "";
      boot();
    } catch (err) {
      $("#token-error").textContent = err.message;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => { wire(); boot(); });
