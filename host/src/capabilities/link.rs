//! A late-bound, weak link from a capability to a part of the host built after the runtime (the
//! HTTP layer serving internal requests, the task scheduler). The owner keeps the part alive; a
//! capability whose link is not (or no longer) connected reports the host as unavailable.

use std::sync::{Arc, OnceLock, Weak};

pub struct Link<T: ?Sized>(Arc<OnceLock<Weak<T>>>);

impl<T: ?Sized> Link<T> {
    /// Points the link at `target` (the first connection wins).
    pub fn connect(&self, target: &Arc<T>) {
        let _ = self.0.set(Arc::downgrade(target));
    }

    /// The target, while its owner keeps it.
    pub fn get(&self) -> Option<Arc<T>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

impl<T: ?Sized> Clone for Link<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: ?Sized> Default for Link<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: ?Sized> std::fmt::Debug for Link<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.get().is_some() { "Link(connected)" } else { "Link(unconnected)" })
    }
}
