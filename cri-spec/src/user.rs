//! The process user: the CRI `run_as_*` fields or the image `USER`,
//! resolved against the image's `/etc/passwd` and `/etc/group` through
//! [`UserLookup`] with containerd's (`oci.WithUser`, `WithAdditionalGIDs`)
//! rules, and the supplementary groups under the Merge and Strict
//! policies.

use std::collections::BTreeSet;

use cri_api::v1::{Int64Value, SupplementalGroupsPolicy};
use oci_spec::runtime::Spec;

use crate::{access, host::UserLookup, Error, Result};

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswdEntry {
    pub name: String,
    pub uid: i64,
    pub gid: i64,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupEntry {
    pub name: String,
    pub gid: i64,
    pub members: Vec<String>,
}

/// Go's `strconv.Atoi`, with the errors runc's parser ignores as 0.
fn atoi(s: &str) -> Option<i64> {
    s.parse::<i64>().ok()
}

fn lines(content: &str) -> impl Iterator<Item = &str> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Parse `/etc/passwd` as runc's `user.ParsePasswd` does.
pub(crate) fn parse_passwd(content: &str) -> Vec<PasswdEntry> {
    lines(content)
        .map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            PasswdEntry {
                name: f.first().copied().unwrap_or_default().to_owned(),
                uid: f.get(2).and_then(|s| atoi(s)).unwrap_or(0),
                gid: f.get(3).and_then(|s| atoi(s)).unwrap_or(0),
            }
        })
        .collect()
}

/// Parse `/etc/group` as runc's `user.ParseGroup` does.
pub(crate) fn parse_group(content: &str) -> Vec<GroupEntry> {
    lines(content)
        .map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            GroupEntry {
                name: f.first().copied().unwrap_or_default().to_owned(),
                gid: f.get(2).and_then(|s| atoi(s)).unwrap_or(0),
                members: f
                    .get(3)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn passwd(users: &dyn UserLookup) -> Result<Option<Vec<PasswdEntry>>> {
    let content = users
        .read_passwd()
        .map_err(|source| Error::ReadPasswd { source })?;
    Ok(content.as_deref().map(parse_passwd))
}

fn group(users: &dyn UserLookup) -> Result<Option<Vec<GroupEntry>>> {
    let content = users
        .read_group()
        .map_err(|source| Error::ReadGroup { source })?;
    Ok(content.as_deref().map(parse_group))
}

/// containerd's `generateUserString`: `user`, `uid`, `user:gid`,
/// `uid:gid`, or `""` (none); a group without a user is an error.
pub(crate) fn user_string(
    username: &str,
    uid: Option<&Int64Value>,
    gid: Option<&Int64Value>,
) -> Result<String> {
    let mut user = uid.map(|v| v.value.to_string()).unwrap_or_default();
    if !username.is_empty() {
        user = username.to_owned();
    }
    match (user.is_empty(), gid) {
        (true, Some(g)) => Err(Error::GroupWithoutUser { group: g.value }),
        (true, None) => Ok(String::new()),
        (false, Some(g)) => Ok(format!("{user}:{}", g.value)),
        (false, None) => Ok(user),
    }
}

/// The uid and gid that `oci.WithUser(userstr)` resolves.
pub(crate) fn resolve_user(userstr: &str, users: &dyn UserLookup) -> Result<(u32, u32)> {
    let parts: Vec<&str> = userstr.split(':').collect();
    match parts.as_slice() {
        [user] => match atoi(user) {
            // WithUserID: the passwd entry's gid, else gid 0.
            Some(uid) => {
                let entry = passwd(users)?.and_then(|p| p.into_iter().find(|e| e.uid == uid));
                Ok(entry.map_or((uid as u32, 0), |e| (e.uid as u32, e.gid as u32)))
            }
            // WithUsername: the name must exist.
            None => {
                let entry = passwd(users)?.and_then(|p| p.into_iter().find(|e| e.name == *user));
                let e = entry.ok_or_else(|| Error::UnknownUser {
                    user: (*user).to_owned(),
                })?;
                Ok((e.uid as u32, e.gid as u32))
            }
        },
        [user, group_part] => {
            let uid = match atoi(user) {
                Some(uid) => uid as u32,
                None => {
                    let entry =
                        passwd(users)?.and_then(|p| p.into_iter().find(|e| e.name == *user));
                    entry
                        .ok_or_else(|| Error::UnknownUser {
                            user: (*user).to_owned(),
                        })?
                        .uid as u32
                }
            };
            let gid = match atoi(group_part) {
                Some(gid) => gid as u32,
                None => {
                    let entry =
                        group(users)?.and_then(|g| g.into_iter().find(|e| e.name == *group_part));
                    entry
                        .ok_or_else(|| Error::UnknownGroup {
                            group: (*group_part).to_owned(),
                        })?
                        .gid as u32
                }
            };
            Ok((uid, gid))
        }
        _ => Err(Error::InvalidUser {
            user: userstr.to_owned(),
        }),
    }
}

/// The groups of `/etc/group` listing the user (by name, or by the name of
/// the passwd entry of a numeric uid) as a member, excluding a group named
/// like the user (`oci.WithAdditionalGIDs`).
pub(crate) fn image_groups(userstr: &str, users: &dyn UserLookup) -> Result<Vec<u32>> {
    let username = match atoi(userstr) {
        Some(uid) => match passwd(users)?.and_then(|p| p.into_iter().find(|e| e.uid == uid)) {
            Some(e) => e.name,
            None => return Ok(Vec::new()),
        },
        None => userstr.to_owned(),
    };
    let Some(groups) = group(users)? else {
        return Ok(Vec::new());
    };
    Ok(groups
        .into_iter()
        .filter(|g| g.name != username && g.members.contains(&username))
        .map(|g| g.gid as u32)
        .collect())
}

/// The CRI side of the user: who to run as and which groups to add.
pub(crate) struct UserRequest<'a> {
    pub run_as_username: &'a str,
    pub run_as_user: Option<&'a Int64Value>,
    pub run_as_group: Option<&'a Int64Value>,
    pub supplemental_groups: &'a [i64],
    pub policy: i32,
    pub image_user: &'a str,
}

fn sorted_unique(gids: impl IntoIterator<Item = u32>) -> Vec<u32> {
    gids.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Set `process.user` for an app container as containerd's
/// `containerSpecOpts` does: `WithUser` (CRI user, else image `USER`),
/// then, under Merge, the image groups of the user plus the supplemental
/// groups; under Strict only the supplemental groups. The primary gid is
/// always among the additional gids when a user was resolved.
pub(crate) fn apply_container_user(
    spec: &mut Spec,
    req: &UserRequest<'_>,
    users: &dyn UserLookup,
) -> Result<()> {
    let policy = match SupplementalGroupsPolicy::try_from(req.policy) {
        Ok(p) => p,
        Err(_) => return Err(Error::UnsupportedSupplementalGroupsPolicy { policy: req.policy }),
    };
    let mut userstr = user_string(req.run_as_username, req.run_as_user, req.run_as_group)?;
    if userstr.is_empty() {
        userstr = req.image_user.to_owned();
    }
    let supplemental = req.supplemental_groups.iter().map(|g| *g as u32);
    let current = access::process(spec)
        .user()
        .additional_gids()
        .clone()
        .unwrap_or_default();
    let mut gids: Vec<u32> = if userstr.is_empty() {
        sorted_unique(current.into_iter().chain(supplemental.clone()))
    } else {
        let (uid, gid) = resolve_user(&userstr, users)?;
        let user = access::process(spec).user_mut();
        user.set_uid(uid);
        user.set_gid(gid);
        vec![gid]
    };
    if policy == SupplementalGroupsPolicy::Merge {
        let lookup = if !req.run_as_username.is_empty() {
            req.run_as_username.to_owned()
        } else if let Some(uid) = req.run_as_user {
            uid.value.to_string()
        } else if !req.image_user.is_empty() {
            req.image_user
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            "0".to_owned()
        };
        let primary = access::process(spec).user().gid();
        let found = image_groups(&lookup, users)?;
        gids = sorted_unique(
            gids.into_iter()
                .chain(found)
                .chain(std::iter::once(primary)),
        );
    }
    gids = sorted_unique(gids.into_iter().chain(supplemental));
    access::process(spec)
        .user_mut()
        .set_additional_gids(Some(gids));
    Ok(())
}

/// The pause container's user: `run_as_user`/`run_as_group` of the pod,
/// else the image `USER` (`sandboxContainerSpecOpts`). The pod's
/// supplemental groups apply only when no user is set, since `WithUser`
/// resets the additional gids to the primary gid.
pub(crate) fn apply_pause_user(
    spec: &mut Spec,
    run_as_user: Option<&Int64Value>,
    run_as_group: Option<&Int64Value>,
    supplemental_groups: &[i64],
    image_user: &str,
    users: &dyn UserLookup,
) -> Result<()> {
    let mut userstr = user_string("", run_as_user, run_as_group)?;
    if userstr.is_empty() {
        userstr = image_user.to_owned();
    }
    let gids = if userstr.is_empty() {
        sorted_unique(supplemental_groups.iter().map(|g| *g as u32))
    } else {
        let (uid, gid) = resolve_user(&userstr, users)?;
        let user = access::process(spec).user_mut();
        user.set_uid(uid);
        user.set_gid(gid);
        vec![gid]
    };
    access::process(spec)
        .user_mut()
        .set_additional_gids(Some(gids));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Users;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\n\nwww:x:33:34::/var/www:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww-data:x:34:\nalice:x:1000:alice\nvideo:x:44:alice,bob\naudio:x:29:bob\nwheel:x:10:root\n";

    fn check_resolve(
        userstr: &str,
        users: &Users,
        expected: std::result::Result<(u32, u32), &str>,
    ) {
        let got = resolve_user(userstr, users);
        match (got, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{userstr}"),
            (Err(e), Err(want)) => assert!(format!("{e:?}").starts_with(want), "{userstr}: {e:?}"),
            (got, want) => panic!("{userstr}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn resolves_users_and_groups() {
        let db = Users::new(Some(PASSWD), Some(GROUP));
        check_resolve("0", &db, Ok((0, 0)));
        check_resolve("33", &db, Ok((33, 34)));
        check_resolve("4242", &db, Ok((4242, 0)));
        check_resolve("www", &db, Ok((33, 34)));
        check_resolve("alice:44", &db, Ok((1000, 44)));
        check_resolve("1000:video", &db, Ok((1000, 44)));
        check_resolve("www:audio", &db, Ok((33, 29)));
        check_resolve("5:6", &db, Ok((5, 6)));
        check_resolve("nobody", &db, Err("UnknownUser"));
        check_resolve("nobody:1", &db, Err("UnknownUser"));
        check_resolve("1:nogroup", &db, Err("UnknownGroup"));
        check_resolve("a:b:c", &db, Err("InvalidUser"));
        let empty = Users::new(None, None);
        check_resolve("7", &empty, Ok((7, 0)));
        check_resolve("alice", &empty, Err("UnknownUser"));
        check_resolve("1:video", &empty, Err("UnknownGroup"));
        check_resolve("3", &Users::failing(), Err("ReadPasswd"));
    }

    #[test]
    fn user_strings() {
        let v = |value| Int64Value { value };
        assert_eq!(user_string("", None, None).ok(), Some(String::new()));
        assert_eq!(user_string("", Some(&v(5)), None).ok(), Some("5".into()));
        assert_eq!(
            user_string("bob", Some(&v(5)), None).ok(),
            Some("bob".into())
        );
        assert_eq!(
            user_string("bob", None, Some(&v(7))).ok(),
            Some("bob:7".into())
        );
        assert_eq!(
            user_string("", Some(&v(5)), Some(&v(7))).ok(),
            Some("5:7".into())
        );
        assert!(matches!(
            user_string("", None, Some(&v(7))),
            Err(Error::GroupWithoutUser { group: 7 })
        ));
    }

    #[test]
    fn image_groups_by_membership() {
        let db = Users::new(Some(PASSWD), Some(GROUP));
        assert_eq!(image_groups("alice", &db).ok(), Some(vec![44]));
        assert_eq!(image_groups("1000", &db).ok(), Some(vec![44]));
        assert_eq!(image_groups("0", &db).ok(), Some(vec![10]));
        assert_eq!(image_groups("4242", &db).ok(), Some(vec![]));
        assert_eq!(
            image_groups("alice", &Users::new(Some(PASSWD), None)).ok(),
            Some(vec![])
        );
    }
}
