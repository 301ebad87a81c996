// The web console in a real browser: Debian's Chromium, driven by playwright-core, against a host
// the Rust test `console::an_admin_runs_the_host_from_the_console` started. Every step is what an
// admin does and sees; a step that does not happen in time fails the run with its name.
// Env: AUTOFLOW_CONSOLE_URL, AUTOFLOW_CONSOLE_ADMIN, AUTOFLOW_CONSOLE_SECOND (admins),
// AUTOFLOW_CONSOLE_USER (no permissions), AUTOFLOW_CONSOLE_PASSWORD (theirs),
// AUTOFLOW_CONSOLE_MANIFEST, AUTOFLOW_CONSOLE_COMPONENT (a build to upload as `hello`),
// AUTOFLOW_CONSOLE_SCREENSHOTS (a directory), AUTOFLOW_TEST_CHROMIUM, AUTOFLOW_TEST_NODE_MODULES.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: the Rust test sets it`);
  return value;
};
const require = createRequire(path.join(env("AUTOFLOW_TEST_NODE_MODULES"), "noop.js"));
const { chromium } = require("playwright-core");

const base = env("AUTOFLOW_CONSOLE_URL");
const password = env("AUTOFLOW_CONSOLE_PASSWORD");
const screenshots = env("AUTOFLOW_CONSOLE_SCREENSHOTS");
const WAIT = { timeout: 15_000 };

const browser = await chromium.launch({
  executablePath: env("AUTOFLOW_TEST_CHROMIUM"),
  // As root in a container, without the machine's network: no sandbox, and no background calls home.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

/** Everything a page does that an admin would notice, or that leaves the host. */
const problems = [];
const pages = [];
async function openPage(label, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  pages.push({ label, page });
  page.on("console", (message) => {
    if (message.type() === "error" && !expectedError(message.text())) problems.push(`${label}: console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`${label}: uncaught: ${error.message}`));
  page.on("request", (request) => {
    if (!request.url().startsWith(base + "/")) problems.push(`${label}: a request left the host: ${request.url()}`);
  });
  return page;
}

// The browser reports a failed fetch as an error; the console expects these two and says why.
function expectedError(text) {
  return /401 \(Unauthorized\)/.test(text) || /409 \(Conflict\)/.test(text);
}

async function step(name, body) {
  process.stdout.write(`console: ${name}\n`);
  try {
    await body();
  } catch (error) {
    // What each page showed: its notice, and a screenshot beside the others.
    const seen = [];
    for (const [index, { label, page }] of pages.entries()) {
      const notice = await page.locator("#notice").textContent().catch(() => "");
      seen.push(`${label} (${page.url()}): notice "${notice}"`);
      await page.screenshot({ path: path.join(screenshots, `failed-${index}.png`), fullPage: true }).catch(() => {});
    }
    throw new Error(`step "${name}" failed: ${error.message}\n${seen.join("\n")}\n${problems.join("\n")}`);
  }
}

async function signIn(page, email) {
  await page.goto(base + "/console");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Plugins", level: 1 }).waitFor(WAIT);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(screenshots, name + ".png"), fullPage: true });
}

/** POSTs `body` to `path` from the signed-in page, as the console's own script calls the API. */
async function create(page, path, body) {
  return page.evaluate(async ([path, body]) => {
    const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    if (response.status !== 201) throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`);
    return response.json();
  }, [path, body]);
}

async function schedule(page, task) {
  return (await create(page, "/api/tasks", task)).id;
}

const admin = await openPage("admin");
const second = await openPage("second admin");
try {
  await step("a wrong password is refused with the host's message", async () => {
    await admin.goto(base + "/console");
    await admin.getByLabel("Email").fill(env("AUTOFLOW_CONSOLE_ADMIN"));
    await admin.getByLabel("Password").fill("not the password");
    await admin.getByRole("button", { name: "Sign in" }).click();
    await admin.locator("#notice .error").waitFor(WAIT);
  });

  await step("signing in shows the example plugins, serving", async () => {
    await signIn(admin, env("AUTOFLOW_CONSOLE_ADMIN"));
    for (const name of ["hello", "notes", "users", "test-tasks"]) {
      await admin.locator(`tr[data-plugin="${name}"]`).getByText("serving").waitFor(WAIT);
    }
    assert.equal(await admin.locator('tr[data-plugin="hello"] td.version').textContent(), "0.1.0");
    await admin.locator('tr[data-plugin="users"] summary').click();
    await admin.locator('tr[data-plugin="users"]').getByText("any of: admin, read:users").first().waitFor(WAIT);
    await shot(admin, "plugins");
  });

  await step("uploading a new build of hello changes its version on the page", async () => {
    await admin.getByLabel("Plugin name").fill("hello");
    await admin.getByLabel("Manifest (plugin.toml)").setInputFiles(env("AUTOFLOW_CONSOLE_MANIFEST"));
    await admin.getByLabel("Component (plugin.wasm)").setInputFiles(env("AUTOFLOW_CONSOLE_COMPONENT"));
    await admin.getByRole("button", { name: "Upload" }).click();
    await admin.locator("#notice .ok").getByText("Uploaded hello").waitFor(WAIT);
    await admin.locator('tr[data-plugin="hello"] td.version').getByText("2.0.0").waitFor(WAIT);
  });

  await step("a task scheduled for later goes from pending to completed while the page watches", async () => {
    const id = await schedule(admin, { name: "echo", payload: { from: "console" }, delayMs: 6000, correlationId: "console-later" });
    await admin.getByRole("link", { name: "Tasks", exact: true }).click();
    await admin.getByLabel("Correlation id").fill("console-later");
    await admin.getByRole("button", { name: "Filter" }).click();
    const row = admin.locator(`tr[data-task="${id}"]`);
    await row.and(admin.locator('[data-status="pending"]')).waitFor(WAIT);
    await row.and(admin.locator('[data-status="completed"]')).waitFor(WAIT);
  });

  await step("a dead task is retried from its page and runs again", async () => {
    const id = await schedule(admin, { name: "fail", payload: {}, maxAttempts: 1 });
    await admin.goto(`${base}/console#/tasks/${id}`);
    const task = admin.locator(`article[data-task="${id}"]`);
    await task.and(admin.locator('[data-status="dead"]')).waitFor(WAIT);
    await shot(admin, "task");
    await task.getByRole("button", { name: "Retry" }).click();
    await admin.locator("#notice .ok").getByText("Retrying the task.").waitFor(WAIT);
    // The retry is a second attempt in the task's history.
    await task.locator("tbody tr").nth(1).waitFor(WAIT);
  });

  await step("a waiting task is cancelled after a confirmation", async () => {
    const id = await schedule(admin, { name: "echo", payload: {}, delayMs: 600_000 });
    await admin.goto(`${base}/console#/tasks/${id}`);
    const task = admin.locator(`article[data-task="${id}"]`);
    await task.getByRole("button", { name: "Cancel" }).click();
    // Dismissing the confirmation changes nothing; confirming cancels.
    await admin.getByRole("dialog").getByRole("button", { name: "Cancel" }).click();
    assert.equal(await task.getAttribute("data-status"), "pending");
    await task.getByRole("button", { name: "Cancel" }).click();
    await admin.getByRole("dialog").getByRole("button", { name: "Confirm" }).click();
    await task.and(admin.locator('[data-status="cancelled"]')).waitFor(WAIT);
  });

  await step("a schedule shows its next run and is paused and resumed", async () => {
    await create(admin, "/api/schedules", { name: "console-nightly", task: "echo", cron: "0 3 * * *", payload: {} });
    await admin.getByRole("link", { name: "Tasks", exact: true }).click();
    const row = admin.locator('tr[data-schedule="console-nightly"]');
    await row.locator("time").waitFor(WAIT);
    await row.getByRole("button", { name: "Pause" }).click();
    await row.getByText("paused").waitFor(WAIT);
    await row.getByRole("button", { name: "Resume" }).click();
    await row.locator("time").first().waitFor(WAIT);
  });

  await step("a page of another site cannot use the admin's session to write", async () => {
    // The same server under another name is another site to the browser. Its page posts the kind
    // of request a form could send, with the admin's cookie if the browser would attach it.
    const attacker = await admin.context().newPage();
    await attacker.goto(base.replace("127.0.0.1", "localhost") + "/console/icon.svg");
    await attacker.evaluate(async (target) => {
      await fetch(target + "/api/schedules/console-nightly/pause", { method: "POST", mode: "no-cors", credentials: "include" })
        .catch(() => {});
    }, base);
    await attacker.close();
    const schedule = await admin.evaluate(async () => (await fetch("/api/schedules/console-nightly")).json());
    assert.equal(schedule.paused, false, "the cross-site request paused the schedule");
  });

  await step("the hour's throughput chart counts the task that completed", async () => {
    await admin.getByRole("link", { name: "Tasks", exact: true }).click();
    await admin.locator(".throughput figcaption").getByText(/Last hour: 1 completed/).waitFor(WAIT);
    await admin.locator(".throughput rect.completed").first().waitFor({ state: "attached", ...WAIT });
    await shot(admin, "tasks");
  });

  await step("disabling a user ends their session in their own browser", async () => {
    await signIn(second, env("AUTOFLOW_CONSOLE_SECOND"));
    await admin.goto(`${base}/console#/users`);
    await admin.getByLabel("Search users").fill(env("AUTOFLOW_CONSOLE_SECOND"));
    const row = admin.locator(`tr[data-user="${env("AUTOFLOW_CONSOLE_SECOND")}"]`);
    await row.getByRole("button", { name: "Disable" }).click();
    await admin.getByRole("button", { name: "Confirm" }).click();
    await row.getByText("disabled").waitFor(WAIT);
    await shot(admin, "users");
    await second.getByText("Your session has ended").waitFor(WAIT);
    await second.getByRole("heading", { name: "Sign in" }).waitFor(WAIT);
  });

  await step("on a phone-width screen the plugins page still reads", async () => {
    const phone = await openPage("phone", { width: 390, height: 844 });
    await signIn(phone, env("AUTOFLOW_CONSOLE_ADMIN"));
    await shot(phone, "plugins-phone");
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page is ${overflow}px wider than the screen`);
  });

  await step("signing out shows the sign-in form again", async () => {
    await admin.getByRole("button", { name: "Sign out" }).click();
    await admin.getByRole("heading", { name: "Sign in" }).waitFor(WAIT);
  });

  await step("signing in works from the keyboard alone", async () => {
    // The form puts the cursor in its first field.
    await admin.waitForFunction(() => document.activeElement && document.activeElement.type === "email", null, WAIT);
    await admin.keyboard.type(env("AUTOFLOW_CONSOLE_ADMIN"));
    await admin.keyboard.press("Tab");
    await admin.keyboard.type(password);
    await admin.keyboard.press("Enter");
    await admin.getByRole("heading", { name: "Plugins", level: 1 }).waitFor(WAIT);
  });

  await step("a user without the admin permission is told the console is not for them", async () => {
    const user = await openPage("user");
    await user.goto(base + "/console");
    await user.getByLabel("Email").fill(env("AUTOFLOW_CONSOLE_USER"));
    await user.getByLabel("Password").fill(password);
    await user.getByRole("button", { name: "Sign in" }).click();
    await user.getByRole("heading", { name: "Not allowed" }).waitFor(WAIT);
    assert.equal(await user.locator("tr[data-plugin]").count(), 0);
  });

  assert.deepEqual(problems, [], "the pages reported errors or reached beyond the host");
  process.stdout.write("console: all steps passed\n");
} finally {
  await browser.close();
}
