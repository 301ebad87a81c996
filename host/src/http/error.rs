//! The one error type of the HTTP layer and its mapping to responses:
//! `{"error": {"code", "message", "fields"?}}` with the matching status. Internal causes are
//! logged here and never sent to the client.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use axum::extract::rejection::JsonRejection;

use crate::contract::PluginError;
use crate::db::DbError;
use crate::runtime::CallError;
use crate::services::identity::IdentityError;
use crate::tasks::ScheduleError;
use crate::tasks::scheduler::in_batch;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route matches {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String, allowed: Vec<String> },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {}ms", .timeout.as_millis())]
    BodyTimeout { timeout: Duration },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Input that fails validation, with the reason per field.
    #[error("{message}")]
    Invalid { message: String, fields: Vec<(String, String)> },
    #[error("plugin '{plugin}' answered with an error")]
    Plugin { plugin: String, error: PluginError },
    #[error("plugin '{plugin}' failed while handling the request")]
    PluginFailed {
        plugin: String,
        #[source]
        source: CallError,
    },
    #[error("plugin '{plugin}' is busy: all {limit} of its instances are running; retry shortly")]
    PluginBusy { plugin: String, limit: u32 },
    #[error("plugin '{plugin}' ran out of memory: {source}")]
    PluginMemoryExceeded {
        plugin: String,
        #[source]
        source: CallError,
    },
    #[error("plugin '{plugin}' did not answer within {}ms", .timeout.as_millis())]
    PluginTimeout { plugin: String, timeout: Duration },
    #[error("plugin '{plugin}' returned an invalid response: {reason}")]
    BadPluginResponse { plugin: String, reason: String },
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] DbError),
    /// No credentials, or credentials that do not authenticate anyone.
    #[error("{0}")]
    Unauthorized(String),
    /// A token was presented and refused (expired, revoked, tampered, …).
    #[error("{0}")]
    InvalidToken(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many attempts; retry in {} seconds", .retry_after.as_secs())]
    TooManyRequests { retry_after: Duration },
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("the reload of plugin '{plugin}' failed and the previous build keeps serving: {reason}")]
    ReloadFailed { plugin: String, reason: String },
    #[error("the uploaded build is not a valid plugin: {0}")]
    InvalidPlugin(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

/// The parts of an error response.
struct ErrorBody {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Option<Map<String, Value>>,
}

impl ErrorBody {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), fields: None }
    }

    /// A `400 invalid` with the reason for each field at fault.
    fn invalid<'a>(message: &str, fields: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut body = Self::new(StatusCode::BAD_REQUEST, "invalid", message);
        let fields: Map<String, Value> = fields.map(|(field, why)| (field.to_owned(), Value::from(why))).collect();
        body.fields = (!fields.is_empty()).then_some(fields);
        body
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Invalid { message, fields } => ApiError::Invalid { message, fields },
            IdentityError::EmailTaken => ApiError::Conflict(error.to_string()),
            IdentityError::NotFound => ApiError::ResourceNotFound(error.to_string()),
            IdentityError::InvalidCredentials => ApiError::Unauthorized(error.to_string()),
            IdentityError::Database(source) => ApiError::DatabaseUnavailable(source),
            IdentityError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<ScheduleError> for ApiError {
    fn from(error: ScheduleError) -> Self {
        match error {
            ScheduleError::UnknownTask(_) => {
                ApiError::Invalid { message: error.to_string(), fields: vec![("name".into(), error.to_string())] }
            }
            ScheduleError::Invalid { field, message } => {
                ApiError::Invalid { message: message.clone(), fields: vec![(field.into(), message)] }
            }
            ScheduleError::Refused { plugin, error, .. } => ApiError::Plugin { plugin, error },
            ScheduleError::InBatch { index, error } => match ApiError::from(*error) {
                ApiError::Invalid { message, fields } => ApiError::Invalid {
                    message: format!("tasks[{index}]: {message}"),
                    fields: fields
                        .into_iter()
                        .map(|(field, message)| (format!("tasks[{index}].{field}"), message))
                        .collect(),
                },
                ApiError::Plugin { plugin, error: PluginError::Invalid(input) } => {
                    ApiError::Plugin { plugin, error: PluginError::Invalid(in_batch(index, input)) }
                }
                other => other,
            },
            ScheduleError::BatchSize(_) => ApiError::BadRequest(error.to_string()),
            ScheduleError::Validator { plugin, source } => ApiError::PluginFailed { plugin, source },
            ScheduleError::Busy { plugin, limit } => ApiError::PluginBusy { plugin, limit },
            ScheduleError::ScheduleTaken(_) | ScheduleError::Declared { .. } => ApiError::Conflict(error.to_string()),
            ScheduleError::NoSchedule(_) => ApiError::ResourceNotFound(error.to_string()),
            ScheduleError::Database(source) => ApiError::DatabaseUnavailable(source),
        }
    }
}

impl ApiError {
    /// A `400 invalid` about one field: the message reads "`field` `why`".
    pub fn invalid_field(field: &str, why: String) -> Self {
        ApiError::Invalid { message: format!("{field} {why}"), fields: vec![(field.to_owned(), why)] }
    }

    /// Why a JSON body was refused: `413` past `limit`, `415` when it is not sent as JSON, else `400`.
    pub fn json_rejection(rejection: JsonRejection, limit: usize) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(rejection.body_text()),
            _ => ApiError::BadRequest(rejection.body_text()),
        }
    }
}

impl ApiError {
    fn body(&self) -> ErrorBody {
        use StatusCode as S;
        match self {
            ApiError::NotFound { .. } => ErrorBody::new(S::NOT_FOUND, "not_found", self.to_string()),
            ApiError::MethodNotAllowed { .. } => {
                ErrorBody::new(S::METHOD_NOT_ALLOWED, "method_not_allowed", self.to_string())
            }
            ApiError::PayloadTooLarge { .. } => {
                ErrorBody::new(S::PAYLOAD_TOO_LARGE, "payload_too_large", self.to_string())
            }
            ApiError::BodyTimeout { .. } => ErrorBody::new(S::REQUEST_TIMEOUT, "request_timeout", self.to_string()),
            ApiError::BadRequest(message) => ErrorBody::new(S::BAD_REQUEST, "bad_request", message),
            ApiError::UnsupportedMediaType(message) => {
                ErrorBody::new(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
            }
            ApiError::Invalid { message, fields } => {
                ErrorBody::invalid(message, fields.iter().map(|(field, why)| (field.as_str(), why.as_str())))
            }
            ApiError::Plugin { error, .. } => plugin_error_body(error),
            ApiError::PluginFailed { .. } => {
                ErrorBody::new(S::INTERNAL_SERVER_ERROR, "plugin_failed", self.to_string())
            }
            ApiError::PluginBusy { .. } => ErrorBody::new(S::SERVICE_UNAVAILABLE, "plugin_busy", self.to_string()),
            ApiError::PluginMemoryExceeded { .. } => {
                ErrorBody::new(S::INTERNAL_SERVER_ERROR, "plugin_memory_exceeded", self.to_string())
            }
            ApiError::PluginTimeout { .. } => ErrorBody::new(S::GATEWAY_TIMEOUT, "plugin_timeout", self.to_string()),
            ApiError::BadPluginResponse { .. } => {
                ErrorBody::new(S::BAD_GATEWAY, "bad_plugin_response", self.to_string())
            }
            ApiError::DatabaseUnavailable(_) => {
                ErrorBody::new(S::SERVICE_UNAVAILABLE, "database_unavailable", self.to_string())
            }
            ApiError::Unauthorized(message) | ApiError::InvalidToken(message) => {
                ErrorBody::new(S::UNAUTHORIZED, "unauthorized", message)
            }
            ApiError::Forbidden(message) => ErrorBody::new(S::FORBIDDEN, "forbidden", message),
            ApiError::TooManyRequests { .. } => ErrorBody::new(S::TOO_MANY_REQUESTS, "rate_limited", self.to_string()),
            ApiError::ResourceNotFound(message) => ErrorBody::new(S::NOT_FOUND, "not_found", message),
            ApiError::ReloadFailed { .. } => ErrorBody::new(S::UNPROCESSABLE_ENTITY, "reload_failed", self.to_string()),
            ApiError::InvalidPlugin(_) => ErrorBody::new(S::BAD_REQUEST, "invalid_plugin", self.to_string()),
            ApiError::Conflict(message) => ErrorBody::new(S::CONFLICT, "conflict", message),
            ApiError::Internal(_) => ErrorBody::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error"),
        }
    }

    fn log(&self, status: StatusCode) {
        match self {
            ApiError::Plugin { plugin, error: PluginError::Internal(message) } => {
                tracing::error!(plugin, message, "plugin reported an internal error");
            }
            ApiError::PluginFailed { source, .. } => tracing::error!(error = %self, cause = %source),
            ApiError::DatabaseUnavailable(source) => tracing::error!(error = %self, cause = %source),
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            _ if status.is_server_error() => tracing::error!(error = %self),
            _ => tracing::debug!(error = %self, status = status.as_u16()),
        }
    }
}

fn plugin_error_body(error: &PluginError) -> ErrorBody {
    use StatusCode as S;
    match error {
        PluginError::NotFound(m) => ErrorBody::new(S::NOT_FOUND, "not_found", m),
        PluginError::Invalid(input) => {
            ErrorBody::invalid(&input.message, input.fields.iter().map(|f| (f.field.as_str(), f.message.as_str())))
        }
        PluginError::Conflict(m) => ErrorBody::new(S::CONFLICT, "conflict", m),
        PluginError::Unauthorized(m) => ErrorBody::new(S::UNAUTHORIZED, "unauthorized", m),
        PluginError::Forbidden(m) => ErrorBody::new(S::FORBIDDEN, "forbidden", m),
        PluginError::Unavailable(m) => ErrorBody::new(S::SERVICE_UNAVAILABLE, "unavailable", m),
        PluginError::Internal(_) => ErrorBody::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ErrorBody { status, code, message, fields } = self.body();
        self.log(status);
        let mut error = json!({ "code": code, "message": message });
        if let Some(fields) = fields {
            error["fields"] = Value::Object(fields);
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let ApiError::MethodNotAllowed { allowed, .. } = &self
            && let Ok(allow) = HeaderValue::from_str(&allowed.join(", "))
        {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        let headers = response.headers_mut();
        match &self {
            ApiError::PluginBusy { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::TooManyRequests { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
            }
            // RFC 6750: the scheme and realm, plus `invalid_token` when a token was refused.
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="autoflow""#));
            }
            ApiError::InvalidToken(_) => {
                let challenge = r#"Bearer realm="autoflow", error="invalid_token""#;
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            _ => {}
        }
        response
    }
}
