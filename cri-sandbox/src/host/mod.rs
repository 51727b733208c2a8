//! Real, privileged implementations of the OS seams: [`LinuxNetns`] for
//! `NetnsManager`, [`LinuxMounts`] for `HostMounts`, [`LinuxHostOs`] for
//! `cri_spec::HostOs`, [`NoSeLinux`] for `cri_spec::SeLinux` and
//! [`LinuxRootfsUserDb`] for reading an image's user database, over
//! [`with_readonly_temp_mount`], which the image volumes use too.

mod mounts;
mod netns;
mod os;
mod selinux;
mod temp_mount;
mod users;

pub use mounts::LinuxMounts;
pub use netns::LinuxNetns;
pub use os::{capability_names, daemon_oom_score_adj, LinuxHostOs};
pub use selinux::NoSeLinux;
pub use temp_mount::with_readonly_temp_mount;
#[cfg(any(test, feature = "mocks"))]
pub use users::MockRootfsUserDb;
pub use users::{needs_user_db, LinuxRootfsUserDb, RootfsUserDb, RootfsUsers};
