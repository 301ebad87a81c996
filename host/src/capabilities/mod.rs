//! The host side of each `autoflow:platform` interface plugins import, one module each.

pub mod http;
mod log;
mod types;
