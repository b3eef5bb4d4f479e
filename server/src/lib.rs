#![recursion_limit = "256"]
//! The tagward server: configuration, startup, sessions, the decision API and the admin command line.

mod audit;
pub mod cli;
pub mod config;
pub mod core;
mod csrf;
pub mod directory;
pub mod enforcement;
mod extract;
pub mod gateway;
pub mod harbor;
pub mod inventory;
mod listener;
pub mod metrics;
pub mod oci_error;
mod openapi;
mod ops;
mod policy_file;
pub mod registry;
pub mod sign_in;
pub mod startup;
pub mod webhooks;

pub use config::ServeConfig;
pub use startup::Application;
