//! Black-box tests of tagward through its surfaces: HTTP, the command line, a real browser.
//! One binary for all of them (each test binary costs a full link here).

mod admin;
mod assets;
mod attachments;
mod auth;
mod browser;
mod cli;
mod container;
mod contract;
mod directory;
mod enforcement;
mod evaluation;
mod events;
mod exceptions;
mod gateway;
mod harbor;
mod held;
mod hostile;
mod inventory;
mod ops;
mod pushes;
mod rules;
mod sign_in;
mod structure;
mod upstream;
mod webhooks;
