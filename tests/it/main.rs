//! One integration-test binary for toggled. Modules, in the order data flows:
//! the flag file's diagnostics, the evaluator's tables and properties, then the command line.

mod approvals;
mod automation;
mod cli;
mod console;
mod evaluator;
mod explain;
mod faults;
mod file_errors;
mod flagd;
mod fuzz;
mod hardening;
mod hot_path;
mod import;
mod layers;
mod monitor;
mod ofrep;
mod openapi;
mod operator;
mod packaging;
mod properties;
mod releases;
mod reload;
mod replicas;
mod routing;
mod schedules;
mod schema;
mod server;
mod soak;
mod store;
mod support;
mod targeting;
mod unleash;
mod unleash_spec;
mod upstream;
mod versions;
