//! Identifiers shared by every crate: the 64-hex ids of sandboxes and
//! containers and the generator that makes them.

use std::fmt;

/// A sandbox id: 64 lowercase hex characters, equal to the containerd
/// container id, snapshot key and task id of the pause container.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SandboxId(pub String);

/// A container id, with the same shape as [`SandboxId`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(pub String);

macro_rules! id_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl From<String> for $t {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
        impl From<&str> for $t {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}
id_impls!(SandboxId);
id_impls!(ContainerId);

/// Makes new ids; injected so tests are deterministic.
pub trait IdGenerator: Send + Sync {
    /// A fresh id: 64 lowercase hex characters (32 random bytes), as
    /// containerd's `util.GenerateID` makes them.
    fn generate(&self) -> String;
}

/// containerd's `util.GenerateID`: 32 random bytes as 64 hex chars.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn generate(&self) -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }
}
