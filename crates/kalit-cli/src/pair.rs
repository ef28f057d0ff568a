//! `kalit vault pair`'s terminal: the person's side of `kalit_phone::pair` (prompts on the terminal, or
//! standard input when it is not one), and reading a QR from a photo.

use std::path::Path;

use kalit_core::{SecretString, display};
use kalit_phone::pair::{JoinSigner, PhoneUi, SignPrompt, new_computer_warning};
use kalit_phone::{PhoneError, PhoneResult};
use kalit_proto::ErrorCode;
use kalit_vault::{DocumentToSign, SignOutcome, Vault};

use crate::error::{CliError, CliResult};

/// The terminal (or standard input) user interface.
#[derive(Debug)]
pub struct TerminalUi {
    /// Prompts.
    pub prompter: crate::prompt::Prompter,
    /// What this phone takes beyond 8 MiB (`--max-document`, `--no-digest`).
    pub documents: kalit_proto::session::DocumentSupport,
}

impl PhoneUi for TerminalUi {
    fn documents(&self) -> kalit_proto::session::DocumentSupport {
        self.documents
    }

    fn show(&mut self, text: &str) {
        println!("{text}");
    }

    fn name_new_computer(&mut self, computer_id: &str, origin: &str) -> PhoneResult<Option<String>> {
        println!("{}", new_computer_warning(computer_id, origin));
        let name = self
            .prompter
            .text("Name this computer to continue (for example \"my laptop\"), or press Enter to stop: ")?;
        Ok(Some(name).filter(|n| !n.trim().is_empty()))
    }

    fn confirm_blind(&mut self, prompt: &SignPrompt<'_>) -> PhoneResult<bool> {
        Ok(self.prompter.confirm(&format!(
            "The phone cannot show you what {} contains. Make a raw signature over bytes you cannot read?",
            display::field(prompt.name, 60)
        ))?)
    }

    fn confirm_unchecked(&mut self, prompt: &SignPrompt<'_>) -> PhoneResult<bool> {
        Ok(self.prompter.confirm(&format!(
            "The phone could not check {} ({} bytes): it has only the computer's word for what you sign. Sign it anyway?",
            display::field(prompt.name, 60),
            prompt.size
        ))?)
    }

    fn join_signer<'s>(&'s mut self, vault: &'s Vault, device_id: &'s str) -> PhoneResult<JoinSigner<'s>> {
        eprintln!("Unlock the vault to connect to the computer.");
        let u = crate::vault_cmd::unlock(vault, &mut self.prompter)?;
        Ok(Box::new(move |st| Ok(u.sign_as_device(device_id, st)?)))
    }

    fn approve(&mut self, prompt: &SignPrompt<'_>) -> PhoneResult<bool> {
        println!("{}", prompt.describe());
        Ok(self.prompter.confirm(&format!(
            "Sign \"{}\" for {}?",
            display::field(prompt.name, 60),
            display::escape(prompt.origin)
        ))?)
    }

    fn pin(&mut self, vault: &Vault) -> PhoneResult<Option<SecretString>> {
        Ok(Some(crate::vault_cmd::ask_pin(vault, &mut self.prompter)?))
    }

    fn sign(
        &mut self,
        vault: &Vault,
        pin: Option<&SecretString>,
        label: &str,
        doc: &DocumentToSign<'_>,
    ) -> PhoneResult<SignOutcome> {
        let pin = pin.ok_or_else(|| PhoneError::new(ErrorCode::Internal, "the terminal signs with a PIN"))?;
        Ok(vault.unlock(pin)?.sign(label, doc)?)
    }
}

/// Reads a QR from a PNG/JPEG photo or screenshot.
pub fn decode_qr_image(path: &Path) -> CliResult<String> {
    let bytes = crate::files::read_limited(path, 20 << 20, "QR image")?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| CliError::new(ErrorCode::InvalidInput, format!("{}: not a readable image: {e}", path.display())))?
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    for grid in prepared.detect_grids() {
        if let Ok((_, text)) = grid.decode() {
            return Ok(text);
        }
    }
    Err(CliError::new(ErrorCode::InvalidInput, format!("no readable QR code in {}", path.display())))
}
