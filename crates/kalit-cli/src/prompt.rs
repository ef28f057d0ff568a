//! Prompts. On a terminal: no-echo for secrets. Otherwise one line of standard input per prompt, in the
//! order the command asks (approval first, then the PIN, then any password), so scripts and tests can
//! drive every command. Secrets are never taken from arguments or environment variables.

use std::io::{BufRead, IsTerminal, Write};

use kalit_core::SecretString;
use kalit_proto::ErrorCode;
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

/// Reads answers from the terminal or from standard input.
#[derive(Debug)]
pub struct Prompter {
    tty: bool,
}

impl Prompter {
    pub fn new() -> Self {
        Prompter { tty: std::io::stdin().is_terminal() }
    }

    fn line(&mut self, prompt: &str, secret: bool) -> CliResult<Zeroizing<String>> {
        if self.tty && secret {
            let s = rpassword::prompt_password(prompt).map_err(CliError::io("cannot read from the terminal"))?;
            return Ok(Zeroizing::new(s));
        }
        let mut err = std::io::stderr();
        let _ = write!(err, "{prompt}");
        let _ = err.flush();
        let mut buf = Zeroizing::new(String::new());
        let n = std::io::stdin().lock().read_line(&mut buf).map_err(CliError::io("cannot read standard input"))?;
        if !self.tty {
            let _ = writeln!(err);
        }
        if n == 0 {
            return Err(CliError::new(
                ErrorCode::Usage,
                format!("standard input ended before the answer to {:?}", prompt.trim()),
            ));
        }
        while buf.ends_with('\n') || buf.ends_with('\r') {
            buf.pop();
        }
        Ok(buf)
    }

    /// A secret (PIN, password).
    pub fn secret(&mut self, prompt: &str) -> CliResult<SecretString> {
        let s = self.line(prompt, true)?;
        Ok(SecretString::new(s.to_string()))
    }

    /// A new secret, asked twice.
    pub fn new_secret(&mut self, what: &str) -> CliResult<SecretString> {
        let a = self.secret(&format!("New {what}: "))?;
        let b = self.secret(&format!("Repeat the new {what}: "))?;
        if a != b {
            return Err(CliError::new(
                ErrorCode::WeakSecret,
                format!("the two {what} entries differ; nothing was changed"),
            ));
        }
        Ok(a)
    }

    /// A line of text (a name).
    pub fn text(&mut self, prompt: &str) -> CliResult<String> {
        Ok(self.line(prompt, false)?.to_string())
    }

    /// A yes/no question; only `y` or `yes` is yes.
    pub fn confirm(&mut self, prompt: &str) -> CliResult<bool> {
        let a = self.line(&format!("{prompt} [y/N] "), false)?;
        Ok(matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
    }
}
