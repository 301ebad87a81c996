//! The error a handler returns; each kind maps to one HTTP status on the host.

use crate::bindings::autoflow::platform::types as wit;

/// The result of a handler or helper.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// One field of the input that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A failure that ends the request with the platform's JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// 404.
    NotFound(String),
    /// 400, with the fields at fault if known.
    Invalid { message: String, fields: Vec<FieldError> },
    /// 409.
    Conflict(String),
    /// 401.
    Unauthorized(String),
    /// 403.
    Forbidden(String),
    /// 503.
    Unavailable(String),
    /// 500; the message is logged by the host and never shown to the client.
    Internal(String),
    /// 415: the body is not sent in the format the route reads (e.g. JSON as `text/plain`, as a
    /// cross-site form would send it). Answered by the router; elsewhere it is a `400`.
    UnsupportedMediaType(String),
    /// 412: an `If-Match` precondition does not hold (the document changed since the client read
    /// it). Answered by the router; elsewhere it is a `409`.
    PreconditionFailed(String),
}

impl Error {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid { message: message.into(), fields: Vec::new() }
    }

    /// A 400 naming one field and what is wrong with it.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        Self::Invalid { message: format!("{field}: {message}"), fields: vec![FieldError { field, message }] }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }
}

/// Collects every bad field of an input, so a client learns of them all at once.
#[derive(Debug, Default)]
pub struct Validation(Vec<FieldError>);

impl Validation {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is wrong, and why.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    /// Records `message` for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.add(field, message);
        }
    }

    /// `Ok` if nothing was recorded, else a `400` with `summary` and every field.
    pub fn finish(self, summary: &str) -> Result<()> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::Invalid { message: summary.to_owned(), fields: self.0 }) }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotFound(m)
            | Self::Conflict(m)
            | Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::Unavailable(m)
            | Self::Internal(m)
            | Self::UnsupportedMediaType(m)
            | Self::PreconditionFailed(m) => f.write_str(m),
            Self::Invalid { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for wit::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::NotFound(m) => wit::Error::NotFound(m),
            Error::Invalid { message, fields } => wit::Error::Invalid(wit::InvalidInput {
                message,
                fields: fields.into_iter().map(|f| wit::FieldError { field: f.field, message: f.message }).collect(),
            }),
            Error::Conflict(m) => wit::Error::Conflict(m),
            Error::Unauthorized(m) => wit::Error::Unauthorized(m),
            Error::Forbidden(m) => wit::Error::Forbidden(m),
            Error::Unavailable(m) => wit::Error::Unavailable(m),
            Error::Internal(m) => wit::Error::Internal(m),
            Error::UnsupportedMediaType(message) => {
                wit::Error::Invalid(wit::InvalidInput { message, fields: Vec::new() })
            }
            Error::PreconditionFailed(m) => wit::Error::Conflict(m),
        }
    }
}

impl From<wit::Error> for Error {
    fn from(error: wit::Error) -> Self {
        match error {
            wit::Error::NotFound(m) => Error::NotFound(m),
            wit::Error::Invalid(input) => Error::Invalid {
                message: input.message,
                fields: input.fields.into_iter().map(|f| FieldError { field: f.field, message: f.message }).collect(),
            },
            wit::Error::Conflict(m) => Error::Conflict(m),
            wit::Error::Unauthorized(m) => Error::Unauthorized(m),
            wit::Error::Forbidden(m) => Error::Forbidden(m),
            wit::Error::Unavailable(m) => Error::Unavailable(m),
            wit::Error::Internal(m) => Error::Internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reports_every_field_at_once() {
        let mut validation = Validation::new();
        validation.check(true, "name", "fine");
        validation.check(false, "email", "must contain @");
        validation.add("age", "must be a number");
        match validation.finish("the input is not valid") {
            Err(Error::Invalid { message, fields }) => {
                assert_eq!(message, "the input is not valid");
                let named: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
                assert_eq!(named, ["email", "age"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Validation::new().finish("unused"), Ok(()));
    }

    #[test]
    fn errors_cross_the_contract_and_come_back_the_same() {
        let errors = [
            Error::not_found("gone"),
            Error::invalid_field("name", "too long"),
            Error::conflict("taken"),
            Error::unauthorized("who?"),
            Error::forbidden("no"),
            Error::unavailable("later"),
            Error::internal("bug"),
        ];
        for error in errors {
            assert_eq!(Error::from(wit::Error::from(error.clone())), error);
        }
        let media = Error::UnsupportedMediaType("send JSON".into());
        assert_eq!(
            Error::from(wit::Error::from(media)),
            Error::Invalid { message: "send JSON".into(), fields: vec![] }
        );
    }
}
