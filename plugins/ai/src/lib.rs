//! Chat completions (the seed's AIService) through one of the caller's integrations:
//!
//! `POST /api/ai/chat` `{"integrationId", "messages": [{"role", "content"}], "model"?,
//! "temperature"?, "maxTokens"?}` → `{"message": {"role", "content"}, "model", "finishReason",
//! "usage"}`.
//!
//! The integration (read from the `integrations` plugin as the caller, so only their own) gives
//! the OpenAI-compatible base URL, the default model (`settings.model`) and the credential, a
//! reference to one of the caller's secrets. The provider's errors come back as `502`, no answer
//! in time as `504`, a provider host the operator does not allow
//! (`AUTOFLOW_PLUGIN_AI__ALLOWED_HOSTS`) as `403`.

use std::time::Duration;

use autoflow_sdk::http::{self, HttpRequest};
use autoflow_sdk::{Error, Request, Response, Result, Router, Validation, config};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const ROLES: &[&str] = &["system", "user", "assistant"];
const MAX_CONTENT_BYTES: usize = 32 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChatRequest {
    integration_id: String,
    messages: Vec<Message>,
    model: Option<String>,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    role: String,
    content: String,
}

/// The parts of an integration (from the `integrations` plugin) a chat needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Integration {
    base_url: String,
    #[serde(default)]
    settings: Map<String, Value>,
    secret_id: Option<String>,
}

#[derive(Deserialize)]
struct Secret {
    value: String,
}

/// The body of an OpenAI-compatible `POST /chat/completions`.
#[derive(Serialize)]
struct Completion<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

fn validate(chat: &ChatRequest) -> Result<()> {
    let max_messages: usize = config::parse("max-messages")?;
    let mut problems = Validation::new();
    problems.check(!chat.integration_id.trim().is_empty(), "integrationId", "is required");
    problems.check(
        (1..=max_messages).contains(&chat.messages.len()),
        "messages",
        format!("must hold 1-{max_messages} messages"),
    );
    for (i, message) in chat.messages.iter().enumerate() {
        problems.check(
            ROLES.contains(&message.role.as_str()),
            &format!("messages[{i}].role"),
            "must be system, user or assistant",
        );
        problems.check(
            message.content.len() <= MAX_CONTENT_BYTES,
            &format!("messages[{i}].content"),
            format!("must be at most {MAX_CONTENT_BYTES} bytes"),
        );
    }
    if let Some(temperature) = chat.temperature {
        problems.check((0.0..=2.0).contains(&temperature), "temperature", "must be between 0 and 2");
    }
    problems.finish("the chat request is not valid")
}

fn chat(req: &Request) -> Result<Response> {
    let chat: ChatRequest = req.json()?;
    validate(&chat)?;
    let id = &chat.integration_id;
    let safe_id = id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let integration: Integration = safe_id
        .then(|| http::internal_get("integrations", &format!("/api/integrations/{id}")))
        .transpose()?
        .flatten()
        .ok_or_else(|| Error::not_found(format!("no integration `{id}`")))?;
    let model = chat
        .model
        .clone()
        .or_else(|| integration.settings.get("model").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| Error::invalid_field("model", "is required, or set settings.model on the integration"))?;

    let timeout = Duration::from_millis(config::parse("timeout-ms")?);
    let url = format!("{}/chat/completions", integration.base_url.trim_end_matches('/'));
    let body = Completion {
        model: &model,
        messages: &chat.messages,
        temperature: chat.temperature,
        max_tokens: chat.max_tokens,
    };
    let mut request = HttpRequest::post(&url).json(&body)?.timeout(timeout);
    if let Some(secret_id) = &integration.secret_id {
        let secret: Secret = http::internal_get("secrets", &format!("/api/secrets/{secret_id}"))?
            .ok_or_else(|| Error::conflict("the integration's secret no longer exists"))?;
        request = request.header("authorization", &format!("Bearer {}", secret.value));
    }
    let response = match request.send() {
        Ok(response) => response,
        Err(error) => return Ok(error.gateway_response()),
    };
    if !response.is_success() {
        let detail: Value = serde_json::from_slice(&response.body).unwrap_or_default();
        let message = detail["error"]["message"].as_str().unwrap_or("no message");
        return Ok(Response::error(
            502,
            "bad_gateway",
            format!("the provider answered {}: {message}", response.status),
        ));
    }
    let answer: Value = match response.json() {
        Ok(answer) => answer,
        Err(error) => return Ok(Response::error(502, "bad_gateway", error.to_string())),
    };
    let choice = &answer["choices"][0];
    if !choice["message"]["content"].is_string() {
        return Ok(Response::error(502, "bad_gateway", "the provider's answer has no choices[0].message"));
    }
    Response::json(&json!({
        "message": { "role": choice["message"]["role"].as_str().unwrap_or("assistant"), "content": choice["message"]["content"] },
        "model": answer["model"].as_str().unwrap_or(&model),
        "finishReason": choice["finish_reason"],
        "usage": answer["usage"],
    }))
}

autoflow_sdk::feature!(Router::new().post("/api/ai/chat", chat));
