//! The `tagward` binary: a thin shim over the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tagward::cli::run().await
}
