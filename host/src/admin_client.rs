//! The command line's client of a host's HTTP API: the admin API (`autoflow plugins …`), the
//! tasks API (`autoflow tasks …`) and the schedules API (`autoflow schedules …`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::cli::{AdminArgs, ApiArgs, NamedArgs, ScheduleArgs, SchedulesCommand, TasksCommand};
use crate::spec::Manifest;
use crate::spec::manifest::{COMPONENT_FILE, MANIFEST_FILE};

/// `autoflow plugins list`: one line per plugin.
pub async fn list(admin: &AdminArgs) -> Result<String> {
    let response = request(&admin.url, &admin.token, reqwest::Method::GET, "/admin/plugins").send().await;
    let body = check(response, &admin.url).await?;
    let mut out = format!("{:<24} {:<10} {:<24} {:<14} {}\n", "NAME", "VERSION", "STATUS", "BUILD", "LAST ERROR");
    for plugin in body["items"].as_array().into_iter().flatten() {
        let text = |key: &str| plugin[key].as_str().unwrap_or("-").to_owned();
        let hash = text("contentHash").chars().take(12).collect::<String>();
        let error = plugin["lastError"]["message"].as_str().unwrap_or("");
        out.push_str(&format!(
            "{:<24} {:<10} {:<24} {:<14} {}\n",
            text("name"),
            text("version"),
            text("status"),
            hash,
            error.lines().next().unwrap_or("")
        ));
    }
    Ok(out)
}

/// `autoflow plugins push DIR`: uploads the build in `dir`; returns a one-line summary.
pub async fn push(dir: &Path, admin: &AdminArgs) -> Result<String> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest =
        std::fs::read_to_string(&manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let name = Manifest::parse(&manifest)
        .map_err(|reason| anyhow::anyhow!("{}: invalid manifest: {reason}", manifest_path.display()))?
        .name;
    let component_path = dir.join(COMPONENT_FILE);
    let component =
        std::fs::read(&component_path).with_context(|| format!("cannot read {}", component_path.display()))?;
    let form = reqwest::multipart::Form::new()
        .part("manifest", reqwest::multipart::Part::text(manifest).file_name(MANIFEST_FILE))
        .part("component", reqwest::multipart::Part::bytes(component).file_name(COMPONENT_FILE));
    let path = format!("/admin/plugins/{name}");
    let response = request(&admin.url, &admin.token, reqwest::Method::PUT, &path).multipart(form).send().await;
    let body = check(response, &admin.url).await?;
    Ok(format!(
        "{name} {} is {} on {} (build {})",
        body["version"].as_str().unwrap_or("?"),
        body["status"].as_str().unwrap_or("?"),
        admin.url,
        body["contentHash"].as_str().unwrap_or("?").chars().take(12).collect::<String>()
    ))
}

/// `autoflow tasks schedule`: schedules a task through `POST /api/tasks`; returns a one-line summary.
async fn schedule(args: &ScheduleArgs) -> Result<String> {
    let payload: Value = serde_json::from_str(&args.payload).context("--payload is not JSON")?;
    let mut body = serde_json::json!({ "name": args.name, "payload": payload });
    let options = [
        ("priority", args.priority.clone().map(Value::from)),
        ("delayMs", args.delay_ms.map(Value::from)),
        ("maxAttempts", args.max_attempts.map(Value::from)),
        ("correlationId", args.correlation_id.clone().map(Value::from)),
        ("uniqueKey", args.unique_key.clone().map(Value::from)),
    ];
    for (key, value) in options {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    let api = &args.api;
    let response = request(&api.url, &api.token, reqwest::Method::POST, "/api/tasks").json(&body).send().await;
    let task = check(response, &api.url).await?;
    Ok(format!(
        "task {} ({}) is {}, priority {}",
        task["id"].as_str().unwrap_or("?"),
        task["name"].as_str().unwrap_or("?"),
        task["status"].as_str().unwrap_or("?"),
        task["priority"].as_str().unwrap_or("?")
    ))
}

/// `autoflow tasks …`: one command against the tasks API; what to print.
pub async fn tasks(command: &TasksCommand) -> Result<String> {
    use reqwest::Method;
    match command {
        TasksCommand::Schedule(args) => schedule(args).await,
        TasksCommand::Pause(NamedArgs { name, api }) => {
            call(api, Method::PUT, &format!("/api/tasks/paused/{name}"), None).await?;
            Ok(format!("task {name} is paused: workers do not claim it until it is resumed"))
        }
        TasksCommand::Resume(NamedArgs { name, api }) => {
            call(api, Method::DELETE, &format!("/api/tasks/paused/{name}"), None).await?;
            Ok(format!("task {name} is resumed"))
        }
        TasksCommand::Stats(api) => {
            let stats = call(api, Method::GET, "/api/tasks/stats", None).await?;
            let mut out = format!(
                "{:<32} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                "NAME", "PENDING", "ACTIVE", "RETRYING", "COMPLETED", "DEAD", "CANCELLED"
            );
            let statuses = ["pending", "active", "retrying", "completed", "dead", "cancelled"];
            let row = |name: &str, counts: &Value| {
                let counts: Vec<String> =
                    statuses.iter().map(|s| counts[s].as_i64().unwrap_or(0).to_string()).collect();
                format!(
                    "{name:<32} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                    counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]
                )
            };
            for (name, counts) in stats["byName"].as_object().into_iter().flatten() {
                out.push_str(&row(name, counts));
            }
            out.push_str(&row("(all)", &stats["byStatus"]));
            for waiting in stats["waiting"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{} priority: {} due, the oldest waiting {} ms\n",
                    waiting["priority"].as_str().unwrap_or("?"),
                    waiting["due"],
                    waiting["oldestAgeMs"]
                ));
            }
            Ok(out)
        }
    }
}

/// `autoflow schedules …`: one command against the schedules API; what to print.
pub async fn schedules(command: &SchedulesCommand) -> Result<String> {
    use reqwest::Method;
    let summary = |schedule: &Value| {
        let timing = match (schedule["cron"].as_str(), schedule["everyMs"].as_i64()) {
            (Some(cron), _) => format!("cron \"{cron}\" {}", schedule["timezone"].as_str().unwrap_or("UTC")),
            (None, Some(ms)) => format!("every {ms} ms"),
            _ => "?".to_owned(),
        };
        format!(
            "{:<24} {:<24} {:<32} {:<7} {}\n",
            schedule["name"].as_str().unwrap_or("?"),
            schedule["task"].as_str().unwrap_or("?"),
            timing,
            if schedule["paused"] == true { "paused" } else { "active" },
            schedule["nextRunAt"].as_str().unwrap_or("-")
        )
    };
    match command {
        SchedulesCommand::List(api) => {
            let listed = call(api, Method::GET, "/api/schedules", None).await?;
            let mut out = format!("{:<24} {:<24} {:<32} {:<7} {}\n", "NAME", "TASK", "WHEN", "STATE", "NEXT RUN");
            for schedule in listed["items"].as_array().into_iter().flatten() {
                out.push_str(&summary(schedule));
            }
            Ok(out)
        }
        SchedulesCommand::Create { name, task, cron, timezone, every_ms, payload, missed, api } => {
            let payload: Value = serde_json::from_str(payload).context("--payload is not JSON")?;
            let body = serde_json::json!({
                "name": name, "task": task, "cron": cron, "timezone": timezone, "everyMs": every_ms,
                "payload": payload, "missed": missed,
            });
            Ok(summary(&call(api, Method::POST, "/api/schedules", Some(body)).await?))
        }
        SchedulesCommand::Pause(NamedArgs { name, api }) => {
            Ok(summary(&call(api, Method::POST, &format!("/api/schedules/{name}/pause"), None).await?))
        }
        SchedulesCommand::Resume(NamedArgs { name, api }) => {
            Ok(summary(&call(api, Method::POST, &format!("/api/schedules/{name}/resume"), None).await?))
        }
        SchedulesCommand::Delete(NamedArgs { name, api }) => {
            call(api, Method::DELETE, &format!("/api/schedules/{name}"), None).await?;
            Ok(format!("schedule {name} is deleted"))
        }
    }
}

/// Sends one request to the API as the user `api` names; the answer's JSON (null if none).
async fn call(api: &ApiArgs, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
    let mut builder = request(&api.url, &api.token, method, path);
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    check(builder.send().await, &api.url).await
}

fn request(base: &str, token: &SecretString, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    reqwest::Client::new().request(method, url).bearer_auth(token.expose_secret())
}

/// The JSON body of a successful answer, or an error carrying the host's own message.
async fn check(response: reqwest::Result<reqwest::Response>, base: &str) -> Result<Value> {
    let response = response.with_context(|| format!("cannot reach the host at {base}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no error message");
        bail!("the host answered {status}: {message}");
    }
    Ok(body)
}
