//! The differential suite: every case of the corpus (`cri_tests::differential::corpus`) through containerd's own CRI plugin and through cri-server, both started once; what each wrote (specs, records, labels, metadata extensions, status files, dirs, verbose status) normalized and diffed, together with what cri-metadata decodes from each side's extension and status file. Then, once for all cases, containerd's plugin takes over cri-server's pods on the same containerd and its List/Status answers are diffed against cri-server's (`handover.*`). A case passes when every difference it shows, in either stage, is a row of `docs/differences.md`; a row that no case shows any more fails the suite too. Prints `differential: N passed, N failed`.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use cri_tests::differential::{
    corpus, diff, normalize, Case, CaseRun, Difference, Differential, Kept,
};
use cri_tests::workspace_root;
use futures::StreamExt;

/// Cases in flight at once (each runs on both sides in parallel).
const CONCURRENCY: usize = 3;

/// What one case came to.
enum Outcome {
    Passed,
    Failed(String),
}

/// Prints straight to the test's stdout, past libtest's capture, so the
/// summary line is in `make test`'s output whatever happens.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn containerd_cri_plugin_and_cri_server_write_the_same() -> Result<()> {
    let started = Instant::now();
    let documented = diff::read_documented(&workspace_root().join("docs/differences.md"))
        .map_err(anyhow::Error::msg)?;
    let env = Arc::new(Differential::start().await?);
    env.pull(&corpus::images()).await?;
    let setup_time = started.elapsed();

    let cases = corpus::cases();
    let total = cases.len();
    let runs: Vec<(Case, Result<CaseRun>)> = futures::stream::iter(cases)
        .map(|case| {
            let env = env.clone();
            async move {
                let result = env.run(&case).await;
                (case, result)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let cases_time = started.elapsed();

    // One handover of every case's cri-server objects to containerd's plugin.
    let mut env = Arc::into_inner(env).context("cases still hold the setup")?;
    let kept: Vec<Kept> = runs
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().and_then(|run| run.kept.clone()))
        .collect();
    let handover = env.handover(&kept).await;
    let results: Vec<(Case, Result<Vec<Difference>>)> = runs
        .into_iter()
        .map(|(case, result)| {
            let result = match (result, &handover) {
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => Err(anyhow::anyhow!("handover: {e:#}")),
                (
                    Ok(CaseRun {
                        mut differences, ..
                    }),
                    Ok(after),
                ) => {
                    differences.extend(after.iter().filter(|d| d.case == case.name).cloned());
                    Ok(differences)
                }
            };
            (case, result)
        })
        .collect();

    let mut used = vec![false; documented.len()];
    let mut outcomes = Vec::new();
    for (case, result) in &results {
        let outcome = match result {
            Err(e) => Outcome::Failed(format!("did not run: {e:#}")),
            Ok(differences) => {
                let mut unexplained = Vec::new();
                for d in differences {
                    match documented.iter().position(|row| row.matches(d)) {
                        Some(i) => used[i] = true,
                        None => unexplained.push(d.markdown_row()),
                    }
                }
                if unexplained.is_empty() {
                    Outcome::Passed
                } else {
                    Outcome::Failed(format!(
                        "{} difference(s) not in docs/differences.md:\n{}",
                        unexplained.len(),
                        unexplained.join("\n")
                    ))
                }
            }
        };
        outcomes.push((case.name, outcome));
    }
    outcomes.sort_by_key(|(name, _)| *name);
    let mut failed = 0;
    for (name, outcome) in &outcomes {
        if let Outcome::Failed(why) = outcome {
            failed += 1;
            say(&format!("differential case {name} FAILED: {why}\n"));
        }
    }
    let stale: Vec<String> = documented
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(row, _)| format!("{} {} ({})", row.case, row.at, row.reason))
        .collect();
    if !stale.is_empty() {
        say(&format!(
            "docs/differences.md rows no case shows any more (remove them):\n{}\n",
            stale.join("\n")
        ));
    }
    if failed > 0 {
        say(&format!("{}\n", env.logs()));
        say(&format!(
            "normalizations applied (tests/src/differential/normalize.rs):\n{}\n",
            normalize::RULES
                .iter()
                .map(|(what, by, why)| format!("  {what} -> {by}: {why}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    say(&format!(
        "differential: {} passed, {failed} failed ({total} cases, {} documented differences; setup {:.1}s, cases {:.1}s, total with the handover {:.1}s)\n",
        total - failed,
        documented.len(),
        setup_time.as_secs_f64(),
        (cases_time - setup_time).as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    ensure!(failed == 0, "{failed} of {total} differential cases failed");
    ensure!(
        stale.is_empty(),
        "{} stale rows in docs/differences.md",
        stale.len()
    );
    Ok(())
}
