//! One module per page.

pub mod account;
pub mod activity;
pub mod admin;
pub mod immutability;
pub mod layout;
pub mod login;
pub mod not_found;
pub mod project;
pub mod projects;
mod rule_dialog;
pub mod tags;
