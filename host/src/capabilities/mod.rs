//! The host side of each `autoflow:platform` interface plugins import, one module each.

mod log;
mod types;
