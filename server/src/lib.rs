//! The tagward server: configuration, startup, sessions, the decision API and the admin command line.

pub mod cli;
pub mod config;
mod csrf;
pub mod enforcement;
pub mod gateway;
pub mod harbor;
mod listener;
pub mod metrics;
mod ops;
pub mod startup;

pub use config::ServeConfig;
pub use startup::Application;
