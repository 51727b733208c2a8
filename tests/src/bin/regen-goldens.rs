//! `regen-goldens`: writes cri-spec's golden specs and cri-metadata's containerd fixtures from containerd's own CRI plugin (see `cri_tests::differential::goldens`). Run by `scripts/regen-goldens.sh` (`make goldens`), as root, with the harness components installed (`make deps`).

use anyhow::{Context, Result};
use cri_tests::differential::{corpus, goldens, Differential};
use cri_tests::workspace_root;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let workspace = workspace_root();
    let env = Differential::start()
        .await
        .context("start containerd's CRI plugin")?;
    env.pull(&corpus::images()).await?;
    let written = goldens::capture(&env, &workspace).await;
    match written {
        Ok(files) => {
            for f in &files {
                println!(
                    "wrote {}",
                    f.strip_prefix(&workspace).unwrap_or(f).display()
                );
            }
            println!("{} files from containerd's CRI plugin", files.len());
            Ok(())
        }
        Err(e) => {
            eprintln!("{}", env.logs());
            Err(e)
        }
    }
}
