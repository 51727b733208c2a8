//! In-memory stores of sandboxes, containers and images, the name index
//! that reserves CRI names, and the id-prefix index. Plain records only:
//! no file I/O and no containerd handles.

pub mod container;
pub mod error;
pub mod image;
pub mod name_index;
pub mod prefix;
mod records;
pub mod sandbox;

pub use error::{Result, StoreError};
pub use records::Record;
