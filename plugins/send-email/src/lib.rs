//! The `send-email` task (the seed's example task): `{"to", "subject", "body"}` is checked when the
//! task is scheduled and, when it runs, delivered to the shared `outbox` collection under the
//! task's id, so a task run twice (at-least-once delivery) still delivers one message.

use autoflow_sdk::records::Collection;
use autoflow_sdk::{Error, Result, Task, TaskError, Tasks, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const OUTBOX: Collection<Delivered> = Collection::new("outbox");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Email {
    to: String,
    subject: String,
    body: String,
}

/// A message in the outbox.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivered {
    to: String,
    subject: String,
    body: String,
    correlation_id: Option<String>,
}

fn validate(email: &Email) -> Result<()> {
    let mut problems = Validation::new();
    let (local, domain) = email.to.split_once('@').unwrap_or_default();
    problems.check(
        !local.is_empty() && domain.contains('.') && !email.to.contains(char::is_whitespace) && email.to.len() <= 254,
        "to",
        "must be an email address",
    );
    problems.check((1..=200).contains(&email.subject.chars().count()), "subject", "must be 1-200 characters");
    problems.check(email.body.len() <= 100_000, "body", "must be at most 100000 bytes");
    problems.finish("the email is not valid")
}

fn send(task: &Task, email: Email) -> core::result::Result<Value, TaskError> {
    let delivered = Delivered {
        to: email.to,
        subject: email.subject,
        body: email.body,
        correlation_id: task.correlation_id.clone(),
    };
    match OUTBOX.create_with_id(&task.id, &delivered) {
        Ok(_) => Ok(json!({ "delivered": true, "to": delivered.to })),
        // An earlier attempt delivered it and then lost its lease: nothing to do again.
        Err(Error::Conflict(_)) => Ok(json!({ "delivered": true, "to": delivered.to, "duplicate": true })),
        Err(error) => Err(error.into()),
    }
}

autoflow_sdk::task!(Tasks::new().collection(&OUTBOX).task("send-email", validate, send));
