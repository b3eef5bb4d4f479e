//! The `tagward` binary: a thin shim over the library.

/// The static (musl) build, the one the container image ships, allocates through mimalloc: musl's
/// own allocator takes one lock for every allocation, and two cores serving checks queue on it
/// (0.29 of `/healthz`'s requests a second, against 0.63 with glibc's; see README, Performance).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tagward::cli::run().await
}
