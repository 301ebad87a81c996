//! The command line's client of a host's admin API (`autoflow plugins …`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::cli::AdminArgs;
use crate::plugins::manifest::{COMPONENT_FILE, MANIFEST_FILE, Manifest};

/// `autoflow plugins list`: one line per plugin.
pub async fn list(admin: &AdminArgs) -> Result<String> {
    let response = request(admin, reqwest::Method::GET, "/admin/plugins").send().await;
    let body = check(response, admin).await?;
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
    let response = request(admin, reqwest::Method::PUT, &format!("/admin/plugins/{name}")).multipart(form).send().await;
    let body = check(response, admin).await?;
    Ok(format!(
        "{name} {} is {} on {} (build {})",
        body["version"].as_str().unwrap_or("?"),
        body["status"].as_str().unwrap_or("?"),
        admin.url,
        body["contentHash"].as_str().unwrap_or("?").chars().take(12).collect::<String>()
    ))
}

fn request(admin: &AdminArgs, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    let url = format!("{}{path}", admin.url.trim_end_matches('/'));
    reqwest::Client::new().request(method, url).bearer_auth(admin.token.expose_secret())
}

/// The JSON body of a successful answer, or an error carrying the host's own message.
async fn check(response: reqwest::Result<reqwest::Response>, admin: &AdminArgs) -> Result<Value> {
    let response = response.with_context(|| format!("cannot reach the host at {}", admin.url))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no error message");
        bail!("the host answered {status}: {message}");
    }
    Ok(body)
}
