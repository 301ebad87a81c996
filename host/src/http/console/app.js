// The Autoflow console: plugins, tasks and users of this host, for a signed-in admin. It reads and
// writes the same endpoints as the API and the CLI (`/auth`, `/admin`, `/api/tasks`,
// `/api/schedules`, `/api/users`) with the session cookie, and reaches nothing else. No
// dependencies; every view polls its data every POLL_MS and redraws only when it changed.

const POLL_MS = 2000;
const THROUGHPUT_POLL_MS = 20_000;
const ADMIN = "admin";
const TASK_STATUSES = ["pending", "active", "retrying", "completed", "dead", "cancelled"];

// ---------------------------------------------------------------------------------------------
// DOM

/** An element with attributes (a function value becomes an event listener) and children. */
function h(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "function") node.addEventListener(name, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) node.append(child);
  }
  return node;
}

function table(caption, headings, rows) {
  return h("div", { class: "scroll" },
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headings.length }, "None.")))));
}

function field(label, control) {
  const id = "f-" + Math.random().toString(36).slice(2);
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return h("time", { datetime: iso, title: iso }, date.toLocaleString());
}

function age(ms) {
  if (ms < 1000) return ms + " ms";
  if (ms < 60_000) return (ms / 1000).toFixed(1) + " s";
  if (ms < 3_600_000) return Math.round(ms / 60_000) + " min";
  return (ms / 3_600_000).toFixed(1) + " h";
}

function json(value) {
  return h("pre", {}, value === undefined || value === null ? "—" : JSON.stringify(value, null, 2));
}

// ---------------------------------------------------------------------------------------------
// Talking to the host

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the host; the parsed JSON answer, or an ApiFailure with the host's error message. */
async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { accept: "application/json" } };
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiFailure(response.status, error.code || "error", error.message || response.statusText);
  }
  return data;
}

function query(params) {
  const pairs = Object.entries(params).filter(([, value]) => value !== "" && value !== undefined && value !== null);
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

// ---------------------------------------------------------------------------------------------
// Notices and confirmation

function notify(message, kind = "info") {
  const notice = document.getElementById("notice");
  notice.replaceChildren(h("p", { class: kind }, message));
}

/** Runs an action, then says what it did, or the host's reason it could not. */
async function act(action, done) {
  try {
    await action();
    if (done) notify(done, "ok");
    await refresh(true);
  } catch (error) {
    if (!sessionEnded(error)) notify(error.message, "error");
  }
}

function confirmed(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
  });
}

// ---------------------------------------------------------------------------------------------
// Session

let me = null;

function sessionEnded(error) {
  if (!(error instanceof ApiFailure) || error.status !== 401) return false;
  me = null;
  showSignIn("Your session has ended. Sign in again.");
  return true;
}

function showAccount() {
  const signedIn = me !== null;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("account").hidden = !signedIn;
  document.getElementById("signed-in-as").textContent = signedIn ? me.email : "";
}

function showSignIn(message) {
  stopPolling();
  showAccount();
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    field("Email", email),
    field("Password", password),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/auth/login", { email: email.value, password: password.value });
      me = await api("GET", "/auth/me");
      notify("");
      if (location.hash === "" || location.hash === "#/sign-in") location.hash = "#/plugins";
      else route();
    } catch (error) {
      notify(error.message, "error");
    }
  });
  notify(message || "", message ? "error" : "info");
  mount(form);
  email.focus();
}

async function signOut() {
  try {
    await api("POST", "/auth/logout");
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status !== 401) notify(error.message, "error");
  }
  me = null;
  // Replacing the address fires no hashchange: the form is drawn once, so nothing typed into it
  // is lost to a second drawing.
  history.replaceState(null, "", "#/sign-in");
  showSignIn();
  notify("Signed out.", "ok");
}

// ---------------------------------------------------------------------------------------------
// Views: each draws its frame once, and redraws its data part whenever the data changed.

let current = null;
let timer = null;

function mount(node) {
  const main = document.getElementById("view");
  main.replaceChildren(node);
}

function stopPolling() {
  if (timer) clearInterval(timer);
  timer = null;
  current = null;
}

/** Reads the current view's data again; redraws it only if it changed (or `force`). */
async function refresh(force = false) {
  const view = current;
  if (!view) return;
  // Someone typing in the data part would lose their text: wait until they leave it.
  if (!force && view.data.contains(document.activeElement) && document.activeElement.matches("input, select, textarea")) {
    return;
  }
  try {
    const data = await view.load();
    if (view !== current) return;
    const text = JSON.stringify(data);
    if (!force && text === view.last) return;
    view.last = text;
    view.data.replaceChildren(view.draw(data));
  } catch (error) {
    if (view === current && !sessionEnded(error)) notify(error.message, "error");
  }
}

function show(title, frame, load, draw) {
  stopPolling();
  const data = h("div", { class: "data", "aria-live": "polite" }, h("p", {}, "Loading…"));
  mount(h("section", { "aria-labelledby": "view-title" }, h("h1", { id: "view-title" }, title), frame, data));
  document.title = title + " · Autoflow console";
  current = { load, draw, data, last: null };
  refresh(true);
  timer = setInterval(() => refresh(), POLL_MS);
}

async function route() {
  if (me === null) {
    try {
      me = await api("GET", "/auth/me");
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 401) return showSignIn();
      notify(error.message, "error");
      return;
    }
  }
  showAccount();
  if (!me.permissions.includes(ADMIN)) {
    stopPolling();
    mount(h("section", { class: "card" },
      h("h1", {}, "Not allowed"),
      h("p", {}, `The console needs the \`${ADMIN}\` permission, which ${me.email} does not have.`)));
    return;
  }
  const [section, id] = location.hash.replace(/^#\//, "").split("/");
  for (const link of document.querySelectorAll("#nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === "#/" + section);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  if (section === "tasks" && id) return taskView(decodeURIComponent(id));
  if (section === "tasks") return tasksView();
  if (section === "users") return usersView();
  if (section !== "plugins") {
    history.replaceState(null, "", "#/plugins");
  }
  return pluginsView();
}

// ---------------------------------------------------------------------------------------------
// Plugins

function accessText(route) {
  if (route.access === "permissions") return "any of: " + route.permissions.join(", ");
  if (route.access === "authenticated") return "signed in";
  return route.access;
}

function capabilitiesText(granted) {
  if (!granted) return "—";
  const parts = [];
  if (granted.outboundHosts.length) parts.push("outbound HTTP to " + granted.outboundHosts.join(", "));
  if (granted.identity) parts.push("identity");
  if (granted.cache) parts.push("cache");
  if (granted.crypto) parts.push("crypto");
  const collections = Object.entries(granted.records).map(([name, scope]) => `${name} (${scope})`);
  if (collections.length) parts.push("records: " + collections.join(", "));
  if (granted.queue.length) parts.push("queue: " + granted.queue.join(", "));
  return parts.length ? parts.join("; ") : "none";
}

function pluginDetails(plugin) {
  const limits = plugin.limits;
  return h("details", { class: "plugin-details" },
    h("summary", {}, "Details of " + plugin.name),
    h("dl", {},
      h("dt", {}, "Description"), h("dd", {}, plugin.description || "—"),
      h("dt", {}, "Kind"), h("dd", {}, plugin.kind || "—"),
      h("dt", {}, "Build hash"), h("dd", {}, h("code", {}, plugin.contentHash || "—")),
      h("dt", {}, "Artifact"), h("dd", {}, plugin.artifact || "—"),
      h("dt", {}, "Capabilities"), h("dd", {}, capabilitiesText(plugin.capabilities)),
      h("dt", {}, "Limits"),
      h("dd", {}, limits
        ? `${limits.memoryMb} MiB, ${limits.timeoutMs} ms, ${limits.maxConcurrency} at once, reuse ${limits.reuse}`
        : "—"),
      plugin.tasks.length ? [h("dt", {}, "Tasks"), h("dd", {}, plugin.tasks.join(", "))] : null),
    plugin.routes.length
      ? h("ul", { class: "routes" }, plugin.routes.map((route) =>
          h("li", {}, h("code", {}, route.method + " " + route.path), " — " + accessText(route))))
      : null);
}

function pluginRow(plugin) {
  const reload = () => act(() => api("POST", `/admin/plugins/${plugin.name}/reload`), `Reloaded ${plugin.name}.`);
  const remove = async () => {
    if (await confirmed(`Delete the uploaded build of ${plugin.name} on every host?`)) {
      await act(() => api("DELETE", `/admin/plugins/${plugin.name}`), `Deleted ${plugin.name}.`);
    }
  };
  const status = plugin.lastError
    ? h("span", { class: "status bad" }, plugin.status, h("br"), h("small", {}, plugin.lastError.message))
    : h("span", { class: "status good" }, plugin.status);
  return h("tr", { "data-plugin": plugin.name },
    h("th", { scope: "row" }, plugin.name, pluginDetails(plugin)),
    h("td", { class: "version" }, plugin.version || "—"),
    h("td", {}, status),
    h("td", {}, h("code", { title: plugin.contentHash || "" }, (plugin.contentHash || "—").slice(0, 12))),
    h("td", {}, when(plugin.loadedAt)),
    h("td", { class: "actions" }, h("div", {},
      h("button", { type: "button", click: reload }, "Reload"),
      h("button", { type: "button", class: "danger", click: remove }, "Delete"))));
}

function uploadForm() {
  const name = h("input", { name: "name", required: true, pattern: "[a-z][a-z0-9\\-]{0,62}", autocomplete: "off" });
  const manifest = h("input", { type: "file", name: "manifest", accept: ".toml", required: true });
  const component = h("input", { type: "file", name: "component", accept: ".wasm", required: true });
  const form = h("form", { class: "card inline", "aria-label": "Upload a build" },
    h("h2", {}, "Upload a build"),
    field("Plugin name", name),
    field("Manifest (plugin.toml)", manifest),
    field("Component (plugin.wasm)", component),
    h("button", { type: "submit" }, "Upload"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = new FormData();
    body.append("manifest", manifest.files[0]);
    body.append("component", component.files[0]);
    await act(async () => {
      const uploaded = await api("PUT", `/admin/plugins/${encodeURIComponent(name.value)}`, body);
      form.reset();
      notify(`Uploaded ${uploaded.name} ${uploaded.version}.`, "ok");
    });
  });
  return form;
}

function pluginsView() {
  show("Plugins", uploadForm(), () => api("GET", "/admin/plugins"), (listing) =>
    table("Plugins loaded on this host", ["Plugin", "Version", "Status", "Build", "Loaded", "Actions"],
      listing.items.map(pluginRow)));
}

// ---------------------------------------------------------------------------------------------
// Tasks

function statusBadge(status) {
  return h("span", { class: "status " + status }, status);
}

function taskActions(task) {
  const buttons = [];
  if (task.status === "dead") {
    buttons.push(h("button", { type: "button", click: () => act(() => api("POST", `/api/tasks/${task.id}/retry`), "Retrying the task.") }, "Retry"));
  }
  if (["pending", "active", "retrying"].includes(task.status)) {
    const cancel = async () => {
      if (await confirmed(`Cancel task ${task.name} (${task.id})?`)) {
        await act(() => api("DELETE", `/api/tasks/${task.id}`), "Cancelled the task.");
      }
    };
    buttons.push(h("button", { type: "button", class: "danger", click: cancel }, "Cancel"));
  }
  return buttons;
}

function countsPanel(stats, paused) {
  const pausedNames = new Set(paused.items.map((item) => item.name));
  const totals = h("ul", { class: "counts" }, TASK_STATUSES.map((status) =>
    h("li", { "data-status": status }, h("span", { class: "count" }, String(stats.byStatus[status] ?? 0)), " ", statusBadge(status))));
  const names = Object.entries(stats.byName).map(([name, counts]) => {
    const isPaused = pausedNames.has(name);
    const toggle = () => act(
      () => api(isPaused ? "DELETE" : "PUT", `/api/tasks/paused/${encodeURIComponent(name)}`),
      `${isPaused ? "Resumed" : "Paused"} ${name}.`);
    return h("tr", {},
      h("th", { scope: "row" }, name, isPaused ? h("span", { class: "status paused" }, " paused") : null),
      TASK_STATUSES.map((status) => h("td", {}, String(counts[status] ?? 0))),
      h("td", {}, h("button", { type: "button", click: toggle }, isPaused ? "Resume" : "Pause")));
  });
  const waiting = stats.waiting.map((row) =>
    h("tr", {}, h("th", { scope: "row" }, row.priority), h("td", {}, String(row.due)), h("td", {}, age(row.oldestAgeMs))));
  return [
    totals,
    table("Tasks by name", ["Task", ...TASK_STATUSES, "Workers"], names),
    table("Waiting tasks due now, by priority", ["Priority", "Due", "Oldest waiting"], waiting),
  ];
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

/** Completed and dead tasks per minute over the last hour, as stacked bars. */
function throughputChart(throughput) {
  const minutes = throughput.minutes;
  const completed = minutes.reduce((sum, m) => sum + m.completed, 0);
  const dead = minutes.reduce((sum, m) => sum + m.dead, 0);
  const peak = Math.max(0, ...minutes.map((m) => m.completed + m.dead));
  const busiest = Math.max(1, peak);
  const [width, height, bar] = [600, 120, 600 / minutes.length];
  const label = `Last hour: ${completed} completed, ${dead} dead; the busiest minute had ${peak}.`;
  const bars = minutes.flatMap((m, index) => {
    const x = index * bar + 1;
    const done = (m.completed / busiest) * height;
    const failed = (m.dead / busiest) * height;
    const title = `${new Date(m.minute).toLocaleTimeString()}: ${m.completed} completed, ${m.dead} dead`;
    return [
      svg("rect", { class: "completed", x, y: height - done, width: bar - 2, height: done }, svg("title", {}, title)),
      svg("rect", { class: "dead", x, y: height - done - failed, width: bar - 2, height: failed }, svg("title", {}, title)),
    ];
  });
  return h("figure", { class: "throughput" },
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, preserveAspectRatio: "none" },
      svg("line", { x1: 0, y1: height, x2: width, y2: height, class: "axis" }), ...bars),
    h("figcaption", {}, label, " ", h("span", { class: "key completed" }, "completed"), " ", h("span", { class: "key dead" }, "dead"),
      " — per minute, oldest on the left."));
}

function schedulesPanel(schedules) {
  const rows = schedules.items.map((schedule) => {
    const toggle = () => act(
      () => api("POST", `/api/schedules/${encodeURIComponent(schedule.name)}/${schedule.paused ? "resume" : "pause"}`),
      `${schedule.paused ? "Resumed" : "Paused"} schedule ${schedule.name}.`);
    return h("tr", { "data-schedule": schedule.name },
      h("th", { scope: "row" }, schedule.name),
      h("td", {}, schedule.task),
      h("td", {}, schedule.cron ? schedule.cron + (schedule.timezone ? " " + schedule.timezone : "") : `every ${age(schedule.everyMs)}`),
      h("td", {}, schedule.paused ? "paused" : when(schedule.nextRunAt)),
      h("td", {}, when(schedule.lastRunAt)),
      h("td", {}, h("button", { type: "button", click: toggle }, schedule.paused ? "Resume" : "Pause")));
  });
  return table("Schedules", ["Schedule", "Task", "When", "Next run", "Last run", "Actions"], rows);
}

function taskRows(page) {
  return page.items.map((task) => h("tr", { "data-task": task.id, "data-status": task.status },
    h("th", { scope: "row" }, h("a", { href: "#/tasks/" + encodeURIComponent(task.id) }, task.name)),
    h("td", {}, statusBadge(task.status)),
    h("td", {}, `${task.attempts} / ${task.maxAttempts}`),
    h("td", {}, when(task.updatedAt)),
    h("td", {}, task.correlationId || "—"),
    h("td", {}, task.scheduledBy || "—"),
    h("td", { class: "actions" }, h("div", {}, taskActions(task)))));
}

function tasksView() {
  const filters = { status: "", name: "", correlationId: "", user: "" };
  const status = h("select", { name: "status" }, h("option", { value: "" }, "any"),
    TASK_STATUSES.map((name) => h("option", { value: name }, name)));
  const name = h("input", { name: "name", autocomplete: "off" });
  const correlation = h("input", { name: "correlationId", autocomplete: "off" });
  const user = h("input", { name: "user", autocomplete: "off" });
  const form = h("form", { class: "card inline", role: "search", "aria-label": "Filter tasks" },
    field("Status", status), field("Task name", name), field("Correlation id", correlation), field("User id", user),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(filters, { status: status.value, name: name.value.trim(), correlationId: correlation.value.trim(), user: user.value.trim() });
    refresh(true);
  });
  // The hour's throughput is read less often than the rest: it counts every task that finished.
  let throughput = null;
  let throughputRead = 0;
  show("Tasks", form,
    async () => {
      const fresh = Date.now() - throughputRead >= THROUGHPUT_POLL_MS;
      const [stats, paused, schedules, page, minutes] = await Promise.all([
        api("GET", "/api/tasks/stats"),
        api("GET", "/api/tasks/paused"),
        api("GET", "/api/schedules"),
        api("GET", "/api/tasks" + query({ ...filters, order: "newest", limit: 50 })),
        fresh ? api("GET", "/api/tasks/throughput") : throughput,
      ]);
      if (fresh) [throughput, throughputRead] = [minutes, Date.now()];
      return { stats, paused, schedules, page, throughput };
    },
    ({ stats, paused, schedules, page, throughput }) => h("div", {},
      table("Tasks, newest first (50 at most)", ["Task", "Status", "Attempts", "Updated", "Correlation id", "User", "Actions"], taskRows(page)),
      h("h2", {}, "Queue"),
      throughputChart(throughput),
      countsPanel(stats, paused),
      h("h2", {}, "Schedules"),
      schedulesPanel(schedules)));
}

function taskView(id) {
  const back = h("p", {}, h("a", { href: "#/tasks" }, "← All tasks"));
  show("Task", back, () => api("GET", `/api/tasks/${encodeURIComponent(id)}`), (task) => h("article", { class: "card", "data-task": task.id, "data-status": task.status },
    h("h2", {}, task.name, " ", statusBadge(task.status)),
    h("div", { class: "actions" }, taskActions(task)),
    h("dl", {},
      h("dt", {}, "Id"), h("dd", {}, h("code", {}, task.id)),
      h("dt", {}, "Priority"), h("dd", {}, task.priority),
      h("dt", {}, "Attempts"), h("dd", {}, `${task.attempts} of ${task.maxAttempts}`),
      h("dt", {}, "Runs at"), h("dd", {}, when(task.runAt)),
      h("dt", {}, "Finished"), h("dd", {}, when(task.finishedAt)),
      h("dt", {}, "Correlation id"), h("dd", {}, task.correlationId || "—"),
      h("dt", {}, "Scheduled by"), h("dd", {}, task.scheduledBy || "—"),
      h("dt", {}, "Schedule"), h("dd", {}, task.schedule || "—"),
      h("dt", {}, "Last error"), h("dd", {}, task.lastError || "—")),
    h("h3", {}, "Payload"), json(task.payload),
    h("h3", {}, "Result"), json(task.result),
    h("h3", {}, "Progress"), json(task.progress),
    table("Attempts", ["Attempt", "Worker", "Started", "Finished", "Outcome", "Error"],
      (task.history || []).map((attempt) => h("tr", {},
        h("th", { scope: "row" }, String(attempt.attempt)),
        h("td", {}, attempt.workerId),
        h("td", {}, when(attempt.startedAt)),
        h("td", {}, when(attempt.finishedAt)),
        h("td", {}, attempt.outcome || "running"),
        h("td", {}, attempt.error || "—"))))));
}

// ---------------------------------------------------------------------------------------------
// Users

const USER_PAGES = 10;

/** The first USER_PAGES pages of users, and whether more follow. */
async function allUsers() {
  const users = [];
  let cursor = "";
  for (let page = 0; page < USER_PAGES; page++) {
    const listing = await api("GET", "/api/users" + query({ limit: 100, cursor }));
    users.push(...listing.items);
    cursor = listing.nextCursor;
    if (!cursor) break;
  }
  return { users, more: Boolean(cursor) };
}

function permissionsList(text) {
  return text.split(",").map((permission) => permission.trim()).filter(Boolean);
}

function userRow(user) {
  const permissions = h("input", { value: user.permissions.join(", "), "aria-label": `Permissions of ${user.email}`, autocomplete: "off" });
  const save = () => act(() => api("PATCH", `/api/users/${user.id}`, { permissions: permissionsList(permissions.value) }),
    `Saved the permissions of ${user.email}.`);
  const toggle = async () => {
    if (!user.disabled && !(await confirmed(`Disable ${user.email}? Their sessions end at once.`))) return;
    await act(() => api("PATCH", `/api/users/${user.id}`, { disabled: !user.disabled }),
      `${user.disabled ? "Enabled" : "Disabled"} ${user.email}.`);
  };
  return h("tr", { "data-user": user.email, "data-search": `${user.email} ${user.displayName}`.toLowerCase() },
    h("th", { scope: "row" }, user.email),
    h("td", {}, user.displayName || "—"),
    h("td", {}, permissions, h("button", { type: "button", click: save }, "Save")),
    h("td", {}, user.disabled ? h("span", { class: "status bad" }, "disabled") : h("span", { class: "status good" }, "active")),
    h("td", {}, when(user.createdAt)),
    h("td", { class: "actions" }, h("div", {},
      h("button", { type: "button", class: user.disabled ? null : "danger", click: toggle }, user.disabled ? "Enable" : "Disable"))));
}

function createUserForm() {
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "off" });
  const displayName = h("input", { name: "displayName", autocomplete: "off" });
  const password = h("input", { type: "password", name: "password", required: true, autocomplete: "new-password" });
  const permissions = h("input", { name: "permissions", autocomplete: "off", placeholder: "e.g. read:users, write:tasks" });
  const form = h("form", { class: "card inline", "aria-label": "Create a user" },
    h("h2", {}, "Create a user"),
    field("Email", email), field("Display name", displayName), field("Password", password), field("Permissions", permissions),
    h("button", { type: "submit" }, "Create"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { email: email.value, password: password.value, permissions: permissionsList(permissions.value) };
    if (displayName.value.trim()) body.displayName = displayName.value.trim();
    act(async () => {
      await api("POST", "/api/users", body);
      form.reset();
    }, `Created ${body.email}.`);
  });
  return form;
}

function usersView() {
  const search = h("input", { type: "search", name: "search", autocomplete: "off", placeholder: "email or name" });
  const applySearch = () => {
    const wanted = search.value.trim().toLowerCase();
    for (const row of document.querySelectorAll("tr[data-user]")) row.hidden = !row.dataset.search.includes(wanted);
  };
  search.addEventListener("input", applySearch);
  show("Users", h("div", {}, createUserForm(), h("div", { role: "search" }, field("Search users", search))),
    allUsers,
    ({ users, more }) => {
      const view = table("Users", ["Email", "Name", "Permissions", "Status", "Created", "Actions"], users.map(userRow));
      queueMicrotask(applySearch);
      if (!more) return view;
      return h("div", {}, h("p", { class: "more" }, `Showing the first ${users.length} users; search looks through these.`), view);
    });
}

// ---------------------------------------------------------------------------------------------

document.getElementById("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
