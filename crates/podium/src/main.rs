//! The `podium` binary: argument parsing and wiring, nothing else. Every component
//! lives in its own crate; see `docs/architecture.md`.

mod cli;
mod credentials;
mod up;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // The shim is the podium binary re-executed to watch one container. It must not start
    // a tokio runtime (it forks), so it is dispatched before anything else.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("shim") {
        let code = podium_runtime_embedded::shim_main(&args[2..]);
        return std::process::ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
