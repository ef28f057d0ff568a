//! Bytes on the wire, as types. A JSON field that carries bytes (a key, a nonce, a signature, a certificate,
//! a document) is a [`Base64`] (standard alphabet, padded) or a [`Base64Url`] (URL-safe alphabet, no
//! padding: the QR's fields). The wire does not change: each still travels as a JSON string.
//!
//! Decoding happens once, when the message is read, and is strict: a string that is not the canonical
//! encoding of its bytes (bad characters, missing or extra padding, non-zero trailing bits) is refused
//! there. So re-encoding a value always gives back the exact text that was received, which matters where a
//! signature covers the text (the attestation statement names the device key in base64). Sizes are bounded
//! by the body or frame limit of the transport that read the message; each field's own limit (32 bytes for
//! a key, 8 MiB for a document) is still checked where the value is used, with that field's error.

use base64::Engine;

macro_rules! bytes_type {
    ($(#[$doc:meta])* $name:ident, $engine:path, $encoding:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name(Vec<u8>);

        impl $name {
            /// A copy of any bytes.
            pub fn of(bytes: impl AsRef<[u8]>) -> Self {
                $name(bytes.as_ref().to_vec())
            }

            /// The bytes.
            pub fn as_slice(&self) -> &[u8] {
                &self.0
            }

            /// The bytes, owned.
            pub fn into_vec(self) -> Vec<u8> {
                self.0
            }

            /// The wire text.
            pub fn encode(&self) -> String {
                $engine.encode(&self.0)
            }

            /// Reads the wire text, strictly (see the module documentation).
            pub fn decode(text: &str) -> Result<Self, base64::DecodeError> {
                $engine.decode(text).map($name)
            }
        }

        impl std::ops::Deref for $name {
            type Target = [u8];
            fn deref(&self) -> &[u8] {
                &self.0
            }
        }

        // No `AsRef<[u8]>`: base64's `decode(impl AsRef<[u8]>)` would then accept a typed value and read its
        // bytes as if they were its text. `as_slice()` and `Deref` say what is meant.

        impl From<Vec<u8>> for $name {
            fn from(v: Vec<u8>) -> Self {
                $name(v)
            }
        }

        impl From<&[u8]> for $name {
            fn from(v: &[u8]) -> Self {
                $name(v.to_vec())
            }
        }

        impl<const N: usize> From<[u8; N]> for $name {
            fn from(v: [u8; N]) -> Self {
                $name(v.to_vec())
            }
        }

        impl From<$name> for Vec<u8> {
            fn from(v: $name) -> Vec<u8> {
                v.0
            }
        }

        /// The length only: documents can be megabytes, and keys have no business in a log line.
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({} bytes)"), self.0.len())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.encode())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a ", $encoding, " string"))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::decode(v).map_err(|_| E::custom(concat!("not ", $encoding)))
                    }
                }
                d.deserialize_str(Visitor)
            }
        }

        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "contentEncoding": $encoding })
            }
        }
    };
}

bytes_type!(
    /// Bytes that travel as standard base64 with padding.
    Base64,
    base64::engine::general_purpose::STANDARD,
    "base64"
);

bytes_type!(
    /// Bytes that travel as URL-safe base64 without padding (the QR's key and secret).
    Base64Url,
    base64::engine::general_purpose::URL_SAFE_NO_PAD,
    "base64url"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_text_is_unchanged_and_only_canonical_text_is_read() {
        let b = Base64::from(vec![0xfb, 0xff]);
        assert_eq!(serde_json::to_string(&b).unwrap(), r#""+/8=""#);
        assert_eq!(serde_json::from_str::<Base64>(r#""+/8=""#).unwrap(), b);
        for bad in [r#""+/8""#, r#""+/9=""#, r#""-_8=""#, r#""+/8==""#, r#"" +/8=""#, "7", "null"] {
            assert!(serde_json::from_str::<Base64>(bad).is_err(), "{bad}");
        }
        let u = Base64Url::from(vec![0xfb, 0xff]);
        assert_eq!(serde_json::to_string(&u).unwrap(), r#""-_8""#);
        for bad in [r#""-_8=""#, r#""+/8""#, r#""-_9""#] {
            assert!(serde_json::from_str::<Base64Url>(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{b:?}"), "Base64(2 bytes)");
    }
}
