//! The command line's client of a host's HTTP API: the admin API (`autoflow plugins …`) and the
//! tasks API (`autoflow tasks …`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::cli::{AdminArgs, ScheduleArgs};
use crate::plugins::manifest::{COMPONENT_FILE, MANIFEST_FILE};
use crate::spec::Manifest;

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
pub async fn schedule(args: &ScheduleArgs) -> Result<String> {
    let payload: Value = serde_json::from_str(&args.payload).context("--payload is not JSON")?;
    let mut body = serde_json::json!({ "name": args.name, "payload": payload });
    let options = [
        ("priority", args.priority.clone().map(Value::from)),
        ("delayMs", args.delay_ms.map(Value::from)),
        ("maxAttempts", args.max_attempts.map(Value::from)),
        ("correlationId", args.correlation_id.clone().map(Value::from)),
    ];
    for (key, value) in options {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    let response = request(&args.url, &args.token, reqwest::Method::POST, "/api/tasks").json(&body).send().await;
    let task = check(response, &args.url).await?;
    Ok(format!(
        "task {} ({}) is {}, priority {}",
        task["id"].as_str().unwrap_or("?"),
        task["name"].as_str().unwrap_or("?"),
        task["status"].as_str().unwrap_or("?"),
        task["priority"].as_str().unwrap_or("?")
    ))
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
