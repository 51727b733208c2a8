//! Real, privileged implementations of the OS seams: [`LinuxNetns`] for
//! `NetnsManager` and [`LinuxMounts`] for `HostMounts`.

mod mounts;
mod netns;

pub use mounts::LinuxMounts;
pub use netns::LinuxNetns;
