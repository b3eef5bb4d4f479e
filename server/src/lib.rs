//! The tagward server: configuration, startup, sessions and the admin command line.

pub mod cli;
pub mod config;
mod csrf;
mod ops;
pub mod startup;

pub use config::ServeConfig;
pub use startup::Application;
