//! Identifiers on the wire, as types: a login is not a device id is not a fingerprint, even though each
//! travels as a JSON string (`#[serde(transparent)]`: the wire does not change). Each reads as `&str`
//! (`Deref`), so code that only looks at the text stays simple; building one from text is explicit
//! (`From<String>`, `From<&str>`), and the checks of what a valid value is stay where they were
//! (`kalit_core::statement::normalize_login` for logins).

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[cfg_attr(feature = "schema", schemars(transparent))]
        pub struct $name(String);

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

id_type!(
    /// A login at a relay (lowercase; `kalit_core::statement::normalize_login` checks and normalises one).
    Login
);
id_type!(
    /// A device's id at a relay: the first 16 bytes of SHA-256 over its Ed25519 key, hex.
    DeviceId
);
id_type!(
    /// A relay's id: the first 16 bytes of SHA-256 over its Ed25519 attestation key, hex.
    RelayId
);
id_type!(
    /// SHA-256 of a certificate's DER, hex.
    CertFingerprint
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain_strings_on_the_wire_and_distinct_types_in_code() {
        let l: Login = serde_json::from_str("\"ali\"").unwrap();
        assert_eq!(l, "ali");
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"ali\"");
        let d = DeviceId::from("00ff");
        assert_eq!(&*d, "00ff");
        assert_eq!(d.to_string(), "00ff");
    }
}
