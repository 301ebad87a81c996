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
}

impl CallContext {
    /// The id of the user the call acts for, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.principal.as_ref().map(|principal| principal.user_id.as_str())
    }
}
