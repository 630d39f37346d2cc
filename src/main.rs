//! The `usher` binary: see [`usher::cli`].

use clap::Parser;

fn main() {
    std::process::exit(usher::cli::run(usher::cli::Cli::parse()));
}
