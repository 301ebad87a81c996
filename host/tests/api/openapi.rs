//! `/openapi.json`: an OpenAPI 3.1 document (checked with `openapi-spec-validator`) of the host's
//! endpoints and the loaded plugins' routes, following reloads; and the page that renders it.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, needs_python, spawn_app_with};

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Validates `spec` against the OpenAPI 3.1 schema; `false` when the tests' Python is missing.
fn validate(spec: &Value) -> bool {
    use std::io::Write;
    const VALIDATE: &str = "import json, sys\nfrom openapi_spec_validator import validate\n\
        from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator\n\
        validate(json.load(sys.stdin), cls=OpenAPIV31SpecValidator)\n";
    let Some(python) = needs_python() else { return false };
    let mut child = std::process::Command::new(python)
        .args(["-c", VALIDATE])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "not valid OpenAPI 3.1: {}", String::from_utf8_lossy(&output.stderr));
    true
}

#[tokio::test]
async fn the_document_is_valid_openapi_and_follows_the_loaded_plugins() {
    let app = spawn_app_with(&["hello", "notes"]).await;

    let spec = document(&app).await;
    if !validate(&spec) {
        return;
    }
    assert_eq!(spec["openapi"], "3.1.0");
    let hello = &spec["paths"]["/api/hello/{name}"]["get"];
    assert_eq!(hello["security"], serde_json::json!([]), "a public route needs no credentials: {hello}");
    assert_eq!(hello["parameters"][0]["name"], "name");
    assert_eq!(hello["x-autoflow-plugin"], "hello");
    assert_eq!(hello["responses"]["504"]["$ref"], "#/components/responses/PluginTimeout");
    let notes = &spec["paths"]["/api/notes"]["post"];
    assert!(notes["security"].as_array().is_some_and(|s| !s.is_empty()), "signed-in routes say so: {notes}");
    let new_note = &notes["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(new_note["title"], "NewNote", "the plugin's own request schema: {notes}");
    assert_eq!(new_note["required"], serde_json::json!(["title"]));
    let note = &spec["paths"]["/api/notes/{id}"]["get"]["responses"]["2XX"]["content"]["application/json"]["schema"];
    assert_eq!(note["title"], "Note", "and its response schema");
    assert!(spec["paths"]["/api/tasks"]["post"]["requestBody"].is_object(), "the host's own endpoints are listed");
    assert!(spec["paths"].get("/api/trap/ok").is_none());

    assert_eq!(app.upload_built("test-trap", "test-trap").await.status(), 201);
    let loaded = document(&app).await;
    validate(&loaded);
    assert_eq!(loaded["paths"]["/api/trap/ok"]["get"]["x-autoflow-plugin"], "test-trap", "listed once loaded");

    let deleted = app.admin(Method::DELETE, "/admin/plugins/test-trap").send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(document(&app).await["paths"].get("/api/trap/ok").is_none(), "and gone once removed");
}

#[tokio::test]
async fn every_host_operation_in_the_document_is_routed() {
    let app = spawn_app_with(&["hello"]).await;
    let spec = document(&app).await;

    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("x-autoflow-plugin").is_some() {
                continue;
            }
            let concrete = path.replace("{name}", "nothing-such").replace("{id}", "nothing-such");
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let response = app.client.request(method.clone(), app.url(&concrete)).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert!(
                status != 405 && !body.contains("no route matches"),
                "{method} {path} is documented but not served: {status} {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} host operations documented");
}

#[tokio::test]
async fn the_api_page_is_served_from_the_binary_under_a_strict_policy() {
    let app = spawn_app_with(&["hello"]).await;

    let page = app.get("/openapi").await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/openapi/page.js" defer></script>"#), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "nothing is fetched from elsewhere");
    let script = app.get("/openapi/page.js").await;
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(script.text().await.unwrap().contains("/openapi.json"));
    assert_eq!(app.get("/openapi/page.css").await.status(), 200);
}
