//! Any bytes as a PFX imported into a real (temporary) vault: an error or an import, never a panic, and
//! the vault stays whole. The password is the one of the seed `seeds/pfx_import/demo.pfx` (written by
//! `kalit demo`), so mutations get past the MAC into the bag parsing.
#![allow(dead_code)]

use std::cell::Cell;

use kalit_core::SecretString;
use kalit_vault::{PinPolicy, Unlocked, Vault};

thread_local! {
    static VAULT: &'static Unlocked<'static> = {
        let dir = std::env::temp_dir().join(format!("kalit-fuzz-{}", std::process::id()));
        let pin = SecretString::new("fuzz-pin-123456".into());
        let policy = PinPolicy { max_attempts: 100, delay_base_ms: 0 };
        let vault: &'static Vault = Box::leak(Box::new(Vault::init(&dir, &pin, policy).expect("vault")));
        Box::leak(Box::new(vault.unlock(&pin).expect("unlock")))
    };
    static N: Cell<u64> = const { Cell::new(0) };
}

/// One fuzz input (see the file's header for what must hold).
pub fn run(data: &[u8]) {
    let n = N.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    VAULT.with(|u| {
        let _ = u.import_pfx(data, &SecretString::new("demo-pfx-password".into()), &format!("f{n}"));
        let (_, damaged) = u.vault().keys().expect("list");
        assert!(damaged.is_empty());
    });
}
