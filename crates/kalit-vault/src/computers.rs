//! The computers this phone has signed for: each remembered by the id of its long-term key (which the
//! Noise handshake authenticates) under a name the person gave it, with how often it was used. A computer
//! the phone has never seen gets a full warning and must be named before anything else happens.
//!
//! `DIR/computers.json` holds public facts only (ids, names, counts), so it is readable before the PIN
//! is asked: the person sees who is asking before typing it. It is written atomically like every vault
//! file.

use serde::{Deserialize, Serialize};

use crate::storage;
use crate::vault::now_rfc3339;
use crate::{Vault, VaultError};

/// Longest computer name, in characters.
pub const MAX_COMPUTER_NAME: usize = 40;
/// Most computers remembered (the least recently used is forgotten beyond).
const MAX_COMPUTERS: usize = 200;

/// A computer this phone knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownComputer {
    /// `kalit_core::session::computer_id` of its key.
    pub id: String,
    /// The name the person gave it.
    pub name: String,
    /// When it was first used (RFC 3339).
    pub first_seen: String,
    /// When it was last used (RFC 3339).
    pub last_seen: String,
    /// Sessions completed with it.
    pub uses: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComputersFile {
    computers: Vec<KnownComputer>,
}

/// Checks a computer name: 1 to 40 characters, none of them control, format or bidi characters.
pub fn check_computer_name(name: &str) -> Result<String, VaultError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_COMPUTER_NAME || n.chars().any(kalit_core::display::is_hidden_or_control)
    {
        return Err(VaultError::Core(kalit_core::CoreError::InvalidInput(format!(
            "a computer's name is 1 to {MAX_COMPUTER_NAME} visible characters"
        ))));
    }
    Ok(n.to_string())
}

impl Vault {
    fn computers_path(&self) -> std::path::PathBuf {
        self.dir().join("computers.json")
    }

    fn read_computers(&self) -> Result<ComputersFile, VaultError> {
        let p = self.computers_path();
        if !p.exists() {
            return Ok(ComputersFile::default());
        }
        storage::read_json(&p)
    }

    /// The computers this phone knows, most recently used first.
    pub fn computers(&self) -> Result<Vec<KnownComputer>, VaultError> {
        let mut c = self.read_computers()?.computers;
        c.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
        Ok(c)
    }

    /// The computer with this id, if the phone knows it.
    pub fn computer(&self, id: &str) -> Result<Option<KnownComputer>, VaultError> {
        Ok(self.read_computers()?.computers.into_iter().find(|c| c.id == id))
    }

    /// Records a session with a computer: a new one is remembered under `name` (required then), a known
    /// one has its count and time updated.
    pub fn record_computer(&self, id: &str, name: Option<&str>) -> Result<KnownComputer, VaultError> {
        let mut f = self.read_computers()?;
        let now = now_rfc3339();
        let entry = match f.computers.iter_mut().find(|c| c.id == id) {
            Some(c) => {
                c.uses += 1;
                c.last_seen = now;
                c.clone()
            }
            None => {
                let name = check_computer_name(name.unwrap_or(""))?;
                let c = KnownComputer { id: id.into(), name, first_seen: now.clone(), last_seen: now, uses: 1 };
                f.computers.push(c.clone());
                if f.computers.len() > MAX_COMPUTERS {
                    f.computers.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
                    f.computers.truncate(MAX_COMPUTERS);
                }
                c
            }
        };
        storage::write_json(&self.computers_path(), &f)?;
        Ok(entry)
    }
}
