//! SELinux: label options from the CRI `SELinuxOption` (the level
//! validated) or, without them, from the sandbox's process label, turned
//! into process and mount labels through [`SeLinux`].

use cri_api::v1::SeLinuxOption;

use crate::{
    host::{SeLinux, SelinuxLabels},
    Error, Result,
};

/// containerd's `checkSelinuxLevel`:
/// `^s\d(-s\d)??(:c\d{1,4}(\.c\d{1,4})?(,c\d{1,4}(\.c\d{1,4})?)*)?$`.
pub(crate) fn valid_level(level: &str) -> bool {
    fn sensitivity(s: &str) -> bool {
        s.len() == 2 && s.starts_with('s') && s.as_bytes()[1].is_ascii_digit()
    }
    fn category(c: &str) -> bool {
        c.strip_prefix('c')
            .is_some_and(|d| (1..=4).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
    }
    let (range, categories) = match level.split_once(':') {
        Some((r, c)) => (r, Some(c)),
        None => (level, None),
    };
    let range_ok = match range.split_once('-') {
        Some((lo, hi)) => sensitivity(lo) && sensitivity(hi),
        None => sensitivity(range),
    };
    let categories_ok = categories.is_none_or(|c| {
        c.split(',').all(|item| match item.split_once('.') {
            Some((a, b)) => category(a) && category(b),
            None => category(item),
        })
    });
    range_ok && categories_ok
}

/// containerd's `toLabel`: `user:`, `role:`, `type:`, `level:` options.
pub(crate) fn label_options(opt: Option<&SeLinuxOption>) -> Result<Vec<String>> {
    let Some(opt) = opt else {
        return Ok(Vec::new());
    };
    if !opt.level.is_empty() && !valid_level(&opt.level) {
        return Err(Error::InvalidSelinuxLevel {
            level: opt.level.clone(),
        });
    }
    let mut labels = Vec::new();
    for (key, value) in [
        ("user", &opt.user),
        ("role", &opt.role),
        ("type", &opt.r#type),
        ("level", &opt.level),
    ] {
        if !value.is_empty() {
            labels.push(format!("{key}:{value}"));
        }
    }
    Ok(labels)
}

/// go-selinux's `DupSecOpt`: the options reproducing a label
/// `user:role:type[:level]`; none for an empty or partial label.
pub(crate) fn dup_sec_opt(label: &str) -> Result<Vec<String>> {
    if label.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = label.splitn(4, ':').collect();
    if parts.len() < 3 {
        return Err(Error::InvalidSelinuxLabel {
            label: label.to_owned(),
        });
    }
    if parts[..3].iter().any(|p| p.is_empty()) {
        return Ok(Vec::new());
    }
    let mut opts = vec![
        format!("user:{}", parts[0]),
        format!("role:{}", parts[1]),
        format!("type:{}", parts[2]),
    ];
    if let Some(level) = parts.get(3).filter(|l| !l.is_empty()) {
        opts.push(format!("level:{level}"));
    }
    Ok(opts)
}

/// Allocate labels from `options` when SELinux is enabled in the config;
/// empty labels otherwise.
pub(crate) fn init_labels(
    selinux: &dyn SeLinux,
    enabled: bool,
    options: &[String],
) -> Result<SelinuxLabels> {
    if !enabled {
        return Ok(SelinuxLabels::default());
    }
    selinux
        .init_labels(options)
        .map_err(|source| Error::InitSelinuxLabels {
            options: options.to_vec(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        for ok in [
            "s0",
            "s0-s1",
            "s0:c1",
            "s0:c1.c1023",
            "s0-s0:c0,c1.c3,c1023",
            "s9:c9999",
        ] {
            assert!(valid_level(ok), "{ok}");
        }
        for bad in [
            "",
            "s",
            "s10",
            "s0:c",
            "s0:c12345",
            "s0:c1,",
            "x0",
            "s0-s1-s2",
            "s0:c1.c2.c3",
            "s0:",
        ] {
            assert!(!valid_level(bad), "{bad}");
        }
    }

    fn check(opt: SeLinuxOption, expected: std::result::Result<&[&str], ()>) {
        let got = label_options(Some(&opt)).map_err(|_| ());
        assert_eq!(
            got,
            expected.map(|l| l.iter().map(|s| (*s).to_owned()).collect()),
            "{opt:?}"
        );
    }

    #[test]
    fn options_from_cri() {
        let o = |user: &str, role: &str, t: &str, level: &str| SeLinuxOption {
            user: user.into(),
            role: role.into(),
            r#type: t.into(),
            level: level.into(),
        };
        check(o("", "", "", ""), Ok(&[]));
        check(
            o("u", "r", "t", "s0:c1,c2"),
            Ok(&["user:u", "role:r", "type:t", "level:s0:c1,c2"]),
        );
        check(o("", "", "spc_t", ""), Ok(&["type:spc_t"]));
        check(o("", "", "", "bad"), Err(()));
        assert_eq!(label_options(None).ok(), Some(vec![]));
    }

    #[test]
    fn dup_of_sandbox_label() {
        let dup = |l: &str| dup_sec_opt(l).ok();
        assert_eq!(
            dup("system_u:system_r:container_t:s0:c1,c2"),
            Some(vec![
                "user:system_u".into(),
                "role:system_r".into(),
                "type:container_t".into(),
                "level:s0:c1,c2".into()
            ])
        );
        assert_eq!(
            dup("u:r:t"),
            Some(vec!["user:u".into(), "role:r".into(), "type:t".into()])
        );
        assert_eq!(dup(""), Some(vec![]));
        assert!(dup_sec_opt("u:r").is_err());
    }
}
