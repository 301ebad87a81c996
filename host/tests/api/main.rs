//! Black-box tests of the host: real servers on random ports, real built plugin components, a
//! fresh database per test (PostgreSQL when `DATABASE_URL` is set, else SQLite).

mod helpers;

mod admin;
mod ai;
mod auth;
mod backends;
mod cache;
mod cli;
mod config;
mod console;
mod database;
mod faults;
mod health;
mod integrations;
mod internal_requests;
mod limits;
mod logs;
mod notes;
mod openapi;
mod operations;
mod outbound;
mod plugin_cache;
mod plugin_crypto;
mod proxy;
mod records;
mod reload;
mod requests;
mod routing;
mod secrets;
mod startup;
mod task_batches;
mod task_controls;
mod tasks;
mod traces;
mod uploads;
mod upstream;
mod users;
mod warm;
mod workers;
