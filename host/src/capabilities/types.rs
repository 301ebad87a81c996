//! `autoflow:platform/types` has no functions; the host only has to acknowledge it.

use crate::runtime::{InstanceState, bindings_types};

impl bindings_types::Host for InstanceState {}
