//! Keeping the tag inventory current: the registry's own events as they happen, and the
//! background sync that reconciles with the registry behind them (events get lost: a sender
//! restarted, a network cut).

pub mod drift;
pub mod events;
mod sync;

pub use sync::RegistrySyncConfig;
