//! Errors of the stores and indexes.

/// Why a store lookup or reservation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} id prefix {prefix} is ambiguous")]
    Ambiguous { kind: &'static str, prefix: String },
    #[error("name {name:?} is reserved for {owner}")]
    NameReserved { name: String, owner: String },
    #[error("{kind} id must not be empty")]
    EmptyId { kind: &'static str },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
}

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
