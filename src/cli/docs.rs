//! `usher completions` and `usher man`: generated from the command-line definition, so
//! they never lag behind it.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// Flags of `usher completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

/// Flags of `usher man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write usher.1 and one page per subcommand (usher-serve.1, …) into this
    /// directory instead of printing usher.1.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` on stdout.
pub fn completions(args: CompletionsArgs) -> Result<(), String> {
    let mut command = Cli::command();
    // Into a buffer first: a reader that stops early (`| head`) is not an error.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "usher", &mut script);
    print_all(&script, "the completion script")
}

/// Writes `text` to stdout; a closed pipe ends the output quietly.
fn print_all(text: &[u8], what: &str) -> Result<(), String> {
    match std::io::stdout().write_all(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot print {what}: {e}"))
        }
        _ => Ok(()),
    }
}

/// Prints the man page, or writes every page into `--out-dir`.
pub fn man(args: ManArgs) -> Result<(), String> {
    let command = Cli::command();
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .map_err(|e| format!("cannot write the man pages to {}: {e}", dir.display()))?;
            println!("man pages written to {}", dir.display());
            Ok(())
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| format!("cannot render the man page: {e}"))?;
            print_all(&page, "the man page")
        }
    }
}
