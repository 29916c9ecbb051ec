//! End-to-end tests: the API, the store on SQLite and PostgreSQL, and the real `tocsin`
//! binary. One test binary, so that linking happens once.

mod adapters;
mod alerting;
mod api;
mod cli;
mod context;
mod crash;
mod faults;
mod infra;
mod isolation;
mod layout;
mod logs;
mod notifiers;
mod pipeline;
mod plugins;
mod prometheus;
mod runners;
mod schemathesis;
mod serverless;
mod store;
mod storm;
mod tenancy;
mod ui;
mod watch;
