//! `kalit man` and `kalit completions`: manual pages and shell completions generated from the same
//! argument grammar the binary parses, so they cannot drift from it.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kalit man --out /usr/share/man/man1      kalit.1, kalit-vault.1, kalit-vault-sign.1, ...
  man -l kalit-vault-sign.1                read one without installing it")]
pub struct ManArgs {
    /// Directory for the pages, one per command (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kalit completions bash > /usr/share/bash-completion/completions/kalit
  kalit completions zsh > \"${fpath[1]}/_kalit\"
  kalit completions fish > ~/.config/fish/completions/kalit.fish")]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// Writes a manual page for `kalit` and for every subcommand, as `kalit-SUB-SUB.1`.
pub fn man(a: ManArgs) -> CliResult {
    std::fs::create_dir_all(&a.out).map_err(CliError::io(format!("cannot create {}", a.out.display())))?;
    let mut cmd = crate::Cli::command();
    cmd.build();
    let mut written = 0;
    write_pages(&cmd, "kalit", &a.out, &mut written)?;
    println!("Wrote {written} manual pages to {}.", a.out.display());
    Ok(())
}

fn write_pages(cmd: &clap::Command, name: &str, out: &Path, written: &mut usize) -> CliResult {
    // Each page is named and titled by its full command name (kalit-vault-sign), as man(1) and
    // whatis(1) look it up; its synopsis keeps the words typed (kalit vault sign).
    let page = cmd.clone().display_name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf).map_err(CliError::io("cannot render a manual page"))?;
    let path = out.join(format!("{name}.1"));
    kalit_service::files::atomic_write(&path, &buf)
        .map_err(CliError::io(format!("cannot write {}", path.display())))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), out, written)?;
    }
    Ok(())
}

/// Prints the completion script for `shell`.
pub fn completions(a: CompletionsArgs) -> CliResult {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "kalit", &mut std::io::stdout());
    Ok(())
}
