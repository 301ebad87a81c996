//! Whom one plugin call acts for and where it came from: bound to the instance that makes the
//! call and carried on into the internal requests and tasks it starts.

use super::Principal;

/// The per-call context of a plugin instance.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The authenticated caller (or the user who scheduled a task), if any.
    pub principal: Option<Principal>,
    /// The request this call serves (empty for a task).
    pub request_id: String,
    /// How many internal requests led to this call (0 for a request from outside).
    pub depth: u8,
    /// The task attempt this call runs, if it runs one (its progress goes on that record).
    pub attempt: Option<Attempt>,
}

/// One attempt of a task, as the worker running it holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub task_id: String,
    /// The worker holding the task's lease.
    pub worker: String,
    /// 1 on the first run.
    pub number: i32,
}

impl CallContext {
    /// A call acting for `principal` outside any request or task (the HTTP API's own calls).
    pub fn for_principal(principal: Principal) -> Self {
        Self { principal: Some(principal), ..Self::default() }
    }

    /// The id of the user the call acts for, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.principal.as_ref().map(|principal| principal.user_id.as_str())
    }
}
