// The durakit dashboard: a client of the admin API served next to it.
// Plain JavaScript, no framework and no external resource. Every value from the server
// is put on the page as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "durakit.admin.token";
const $ = (id) => document.getElementById(id);
const state = { offset: 0, limit: 50, nextOffset: null, filters: {} };
let tokenRequired = false;
let flash = ""; // a message to show on the next page, after a fork moves there

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.error ? data.error : "HTTP " + response.status;
    throw new ApiError(response.status, data && data.code, message);
  }
  return data;
}

function show(message, isError) {
  const box = $("message");
  box.textContent = message;
  box.className = isError ? "error" : "";
  box.hidden = !message;
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    signIn("The token was refused: enter it again.");
    return;
  }
  show(error.message || String(error), true);
}

function signIn(message) {
  $("list-view").hidden = true;
  $("detail-view").hidden = true;
  $("sign-in").hidden = false;
  $("signed-in").hidden = true;
  if (message) show(message, true);
  $("token-input").focus();
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function td(text) {
  const cell = document.createElement("td");
  cell.textContent = text === null || text === undefined ? "" : String(text);
  return cell;
}

function badge(status) {
  const span = document.createElement("span");
  span.className = "status " + status;
  span.textContent = status;
  return span;
}

function pretty(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function detailHref(id) {
  return "#/workflow/" + encodeURIComponent(id);
}

// -- the list -------------------------------------------------------------------------
function readFilters() {
  const f = {};
  const status = $("filter-status").value;
  if (status) f.status = status;
  const name = $("filter-name").value.trim();
  if (name) f.name = name;
  const queue = $("filter-queue").value.trim();
  if (queue) f.queue_name = queue;
  const prefix = $("filter-prefix").value.trim();
  if (prefix) f.workflow_id_prefix = prefix;
  // datetime-local is the browser's local time: sent as an ISO time with its offset.
  if ($("filter-since").value) f.start_time = new Date($("filter-since").value).toISOString();
  if ($("filter-until").value) f.end_time = new Date($("filter-until").value).toISOString();
  return f;
}

async function loadList() {
  const body = Object.assign({}, state.filters, {
    limit: state.limit,
    offset: state.offset,
    sort_desc: true,
    load_input: false,
    load_output: false,
  });
  const page = await api("POST", "/workflows", body);
  state.nextOffset = page.next_offset;
  const tbody = $("workflows").querySelector("tbody");
  tbody.replaceChildren();
  for (const w of page.workflows) {
    const row = document.createElement("tr");
    row.dataset.workflowId = w.workflow_id;
    const idCell = document.createElement("td");
    const link = document.createElement("a");
    link.href = detailHref(w.workflow_id);
    link.textContent = w.workflow_id;
    idCell.append(link);
    const statusCell = document.createElement("td");
    statusCell.append(badge(w.status));
    row.append(idCell, td(w.name), statusCell, td(when(w.created_at)), td(when(w.updated_at)),
      td(w.executor_id), td(w.application_version));
    tbody.append(row);
  }
  $("empty").hidden = page.workflows.length > 0;
  const first = page.workflows.length ? page.offset + 1 : 0;
  $("page-info").textContent = `${first}–${page.offset + page.workflows.length}`;
  $("page-prev").disabled = page.offset === 0;
  $("page-next").disabled = page.next_offset === null;
}

// -- one workflow ---------------------------------------------------------------------
const FIELDS = ["name", "status", "executor_id", "application_version", "application_id",
  "created_at", "updated_at", "started_at", "attempts", "queue_name", "priority",
  "deduplication_id", "timeout", "deadline", "authenticated_user", "assumed_role",
  "authenticated_roles"];

function renderFields(w) {
  const tbody = $("detail-fields").querySelector("tbody");
  tbody.replaceChildren();
  for (const key of FIELDS) {
    const value = w[key];
    if (value === null || value === undefined) continue;
    const row = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = key;
    const shown = key.endsWith("_at") || key === "deadline" ? when(value)
      : key === "timeout" ? value + " s"
      : Array.isArray(value) ? value.join(", ") : value;
    row.append(th, td(shown));
    tbody.append(row);
  }
}

function renderTimeline(steps) {
  const box = $("timeline");
  box.replaceChildren();
  $("no-steps").hidden = steps.length > 0;
  box.hidden = steps.length === 0;
  const times = steps.filter((s) => s.started_at && s.completed_at);
  const start = Math.min(...times.map((s) => Date.parse(s.started_at)));
  const end = Math.max(...times.map((s) => Date.parse(s.completed_at)));
  const span = Math.max(end - start, 1);
  for (const s of steps) {
    const row = document.createElement("div");
    row.className = "step" + (s.error ? " error" : "");
    row.dataset.stepId = s.step_id;
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = s.step_id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = s.name;
    name.title = s.name;
    const track = document.createElement("div");
    track.className = "track";
    const duration = document.createElement("span");
    duration.className = "duration";
    if (s.started_at && s.completed_at) {
      const a = Date.parse(s.started_at);
      const b = Date.parse(s.completed_at);
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.left = ((a - start) / span) * 100 + "%";
      bar.style.width = ((b - a) / span) * 100 + "%";
      bar.title = `${when(s.started_at)} → ${when(s.completed_at)}`;
      track.append(bar);
      duration.textContent = b - a + " ms";
    }
    const outcome = document.createElement("span");
    outcome.className = "outcome";
    outcome.textContent = s.error ? `${s.error.type}: ${s.error.message}`
      : s.child_workflow_id ? "child " + s.child_workflow_id : pretty(s.output);
    row.append(id, name, track, duration, outcome);
    box.append(row);
  }
}

async function loadDetail(id) {
  const [w, steps] = await Promise.all([
    api("GET", "/workflows/" + encodeURIComponent(id)),
    api("GET", "/workflows/" + encodeURIComponent(id) + "/steps"),
  ]);
  $("detail-id").textContent = w.workflow_id;
  $("detail-status").replaceWith(Object.assign(badge(w.status), { id: "detail-status" }));
  renderFields(w);
  $("detail-input").textContent = pretty(w.input);
  $("result-title").textContent = w.error ? "Error" : "Output";
  $("detail-result").textContent = w.error ? `${w.error.type}: ${w.error.message}` : pretty(w.output);
  renderTimeline(steps);
  const finished = ["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"];
  $("btn-cancel").disabled = finished.includes(w.status);
  $("btn-resume").disabled = !["CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "ENQUEUED"].includes(w.status);
  $("fork-step").max = steps.length ? steps[steps.length - 1].step_id + 1 : 0;
}

async function act(action, body) {
  const id = currentId();
  try {
    const answer = await api("POST", "/workflows/" + encodeURIComponent(id) + "/" + action, body);
    if (action === "fork") {
      flash = `Forked ${id} from step ${answer.start_step} as ${answer.workflow_id}`;
      location.hash = detailHref(answer.workflow_id);
      return;
    }
    show(`${action === "cancel" ? "Cancelled" : "Resumed"} ${id}: now ${answer.status}`);
    await loadDetail(id);
  } catch (error) {
    failed(error);
  }
}

// -- routing --------------------------------------------------------------------------
function currentId() {
  const match = location.hash.match(/^#\/workflow\/(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

async function route() {
  if (tokenRequired && !token()) {
    signIn();
    return;
  }
  $("sign-in").hidden = true;
  $("signed-in").hidden = !token();
  const id = currentId();
  $("list-view").hidden = id !== null;
  $("detail-view").hidden = id === null;
  try {
    if (id === null) await loadList();
    else await loadDetail(id);
  } catch (error) {
    failed(error);
  }
}

async function start() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    show("");
    route();
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.filters = readFilters();
    state.limit = Number($("filter-limit").value);
    state.offset = 0;
    show("");
    route();
  });
  $("filter-clear").addEventListener("click", () => {
    $("filters").reset();
    state.filters = {};
    state.limit = Number($("filter-limit").value);
    state.offset = 0;
    route();
  });
  $("page-prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    route();
  });
  $("page-next").addEventListener("click", () => {
    if (state.nextOffset !== null) state.offset = state.nextOffset;
    route();
  });
  $("btn-cancel").addEventListener("click", () => act("cancel"));
  $("btn-resume").addEventListener("click", () => act("resume"));
  $("btn-fork").addEventListener("click", () => act("fork", { start_step: Number($("fork-step").value) }));
  $("btn-refresh").addEventListener("click", () => route());
  window.addEventListener("hashchange", () => {
    show(flash); // a message belongs to the page it was shown on
    flash = "";
    route();
  });
  try {
    tokenRequired = (await api("GET", "/healthz")).token_required;
  } catch (error) {
    failed(error);
    return;
  }
  await route();
}

start();
