//! Pod sandboxes: the `SandboxController` trait and its pause-container
//! ("podsandbox") implementation, network namespaces, CNI, and the
//! per-sandbox files (resolv.conf, hostname, hosts, /dev/shm).

pub mod cni;
pub mod controller;
pub mod files;
pub mod host;
pub mod mounts;
pub mod netns;
