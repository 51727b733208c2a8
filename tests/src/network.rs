//! Per-test CNI networks: a leased index gives each cri-server its own bridge name and /24 subnet (unique across test threads and processes), and the bridge + host-local + portmap + loopback conflist that uses them.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::teardown;

/// Leases are indices into `10.123.<index>.0/24`.
const LEASES: u16 = 256;

/// A bridge name and subnet reserved for one test until dropped.
#[derive(Debug)]
pub struct TestNetwork {
    /// The CNI network name in the conflist.
    pub name: String,
    /// The Linux bridge the bridge plugin creates (`critest<N>`).
    pub bridge: String,
    /// `10.123.<N>.0/24`.
    pub subnet: String,
    /// `10.123.<N>.1`, the bridge's address and the pods' default gateway.
    pub gateway: String,
    lease: PathBuf,
}

impl TestNetwork {
    /// Reserves a free index (reclaiming leases whose process is gone) and
    /// removes any stale bridge of that name.
    pub fn lease() -> Result<TestNetwork> {
        let dir = teardown::base_dir().join("leases");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        // Start at a per-process offset so parallel processes rarely race.
        let start = (std::process::id() % u32::from(LEASES)) as u16;
        for step in 0..LEASES {
            let index = (start + step) % LEASES;
            let lease = dir.join(format!("net{index}"));
            if try_take(&lease)? {
                let network = TestNetwork {
                    name: format!("cri-tests-{index}"),
                    bridge: format!("critest{index}"),
                    subnet: format!("10.123.{index}.0/24"),
                    gateway: format!("10.123.{index}.1"),
                    lease,
                };
                teardown::delete_bridge(&network.bridge);
                return Ok(network);
            }
        }
        bail!("all {LEASES} test networks in {} are leased", dir.display())
    }

    /// Whether `ip` (dotted IPv4) is in this network's subnet.
    pub fn contains(&self, ip: &str) -> bool {
        let prefix = self.subnet.trim_end_matches("0/24");
        ip.starts_with(prefix)
    }

    /// The conflist for this network; host-local keeps its state in
    /// `ipam_dir`.
    pub fn conflist(&self, ipam_dir: &Path) -> String {
        let doc = json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{ "subnet": self.subnet, "gateway": self.gateway }]],
                        "routes": [{ "dst": "0.0.0.0/0" }],
                        "dataDir": ipam_dir,
                    },
                },
                { "type": "portmap", "capabilities": { "portMappings": true } },
                { "type": "loopback" },
            ],
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        teardown::delete_bridge(&self.bridge);
        let _ = std::fs::remove_file(&self.lease);
    }
}

/// Creates `lease` holding our pid; reclaims it if its holder is dead.
fn try_take(lease: &Path) -> Result<bool> {
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(lease)
        {
            Ok(mut file) => {
                write!(file, "{}", std::process::id())?;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(lease).unwrap_or_default();
                match holder.trim().parse::<i32>() {
                    Ok(pid) if teardown::is_alive(pid) => return Ok(false),
                    // Dead holder, or a lease being written right now: only
                    // reclaim the former.
                    Err(_) if holder.is_empty() => return Ok(false),
                    _ => {
                        let _ = std::fs::remove_file(lease);
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("create {}", lease.display())),
        }
    }
    Ok(false)
}
