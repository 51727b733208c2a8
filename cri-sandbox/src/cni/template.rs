//! containerd's `cni.conf_template`: on UpdateRuntimeConfig with a pod
//! CIDR, render the template (a Go `text/template` over `.PodCIDR`,
//! `.PodCIDRRanges` and `.Routes`) into `<conf_dir>/10-containerd-net.conflist`.
//! The Go template subset supported is `go_template`'s.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::go_template::{self, Val};
use super::result::parse_cidr;

/// The file containerd writes (`cniConfigFileName`).
pub const CNI_CONF_FROM_TEMPLATE: &str = "10-containerd-net.conflist";

/// Why a template could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("invalid pod cidr {cidr:?}: {reason}")]
    InvalidCidr { cidr: String, reason: String },
    #[error("parse cni config template: {0}")]
    Parse(String),
    #[error("execute cni config template: {0}")]
    Execute(String),
    #[error("read cni config template {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write cni config {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The template's data (containerd `cniConfigTemplate`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfTemplateData {
    pub pod_cidr: String,
    pub pod_cidr_ranges: Vec<String>,
    pub routes: Vec<String>,
}

impl ConfTemplateData {
    /// From the kubelet's comma-separated pod CIDRs: the first is
    /// `PodCIDR`, all are `PodCIDRRanges`, and `Routes` has `0.0.0.0/0`
    /// and/or `::/0` for the families present (containerd `getRoutes`).
    pub fn from_pod_cidrs(pod_cidrs: &str) -> Result<Self, TemplateError> {
        let cidrs: Vec<String> = pod_cidrs.split(',').map(|c| c.trim().to_owned()).collect();
        let (mut v4, mut v6) = (false, false);
        for cidr in &cidrs {
            let (ip, _) = parse_cidr(cidr).map_err(|reason| TemplateError::InvalidCidr {
                cidr: cidr.clone(),
                reason,
            })?;
            if ip.is_ipv4() {
                v4 = true;
            } else {
                v6 = true;
            }
        }
        let mut routes = Vec::new();
        if v4 {
            routes.push("0.0.0.0/0".to_owned());
        }
        if v6 {
            routes.push("::/0".to_owned());
        }
        Ok(Self {
            pod_cidr: cidrs.first().cloned().unwrap_or_default(),
            pod_cidr_ranges: cidrs,
            routes,
        })
    }
}

/// Renders `template` with `data`.
pub fn render_conf_template(
    template: &str,
    data: &ConfTemplateData,
) -> Result<String, TemplateError> {
    go_template::render(template, &|field| match field {
        "PodCIDR" => Some(Val::Str(data.pod_cidr.clone())),
        "PodCIDRRanges" => Some(Val::List(data.pod_cidr_ranges.clone())),
        "Routes" => Some(Val::List(data.routes.clone())),
        _ => None,
    })
}

/// Reads the template file, renders it and writes
/// `<conf_dir>/10-containerd-net.conflist` (0644, atomically; conf_dir is
/// created 0755 if missing). Returns the path written.
pub fn write_conf_from_template(
    template_path: &Path,
    conf_dir: &Path,
    data: &ConfTemplateData,
) -> Result<PathBuf, TemplateError> {
    let template =
        std::fs::read_to_string(template_path).map_err(|source| TemplateError::Read {
            path: template_path.to_path_buf(),
            source,
        })?;
    let rendered = render_conf_template(&template, data)?;
    let path = conf_dir.join(CNI_CONF_FROM_TEMPLATE);
    let werr = |source| TemplateError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(conf_dir).map_err(werr)?;
    let tmp = conf_dir.join(format!(".{CNI_CONF_FROM_TEMPLATE}.tmp"));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(rendered.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(template: &str, pod_cidrs: &str, expected: Result<&str, ()>) {
        let data = ConfTemplateData::from_pod_cidrs(pod_cidrs).unwrap();
        assert_eq!(
            render_conf_template(template, &data)
                .as_deref()
                .map_err(|_| ()),
            expected,
            "{template}"
        );
    }

    /// The example from containerd's docs/cri/config.md.
    const DOC_TEMPLATE: &str = r#"{"name":"containerd-net","plugins":[{"ipam":{"ranges":[
{{- range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet":"{{$range}}"}]{{end}}],"routes":[
{{- range $i, $route := .Routes}}{{if $i}}, {{end}}{"dst":"{{$route}}"}{{end}}]}}]}"#;

    #[test]
    fn simple_fields() {
        check(
            r#"{"subnet": "{{.PodCIDR}}"}"#,
            "10.244.1.0/24",
            Ok(r#"{"subnet": "10.244.1.0/24"}"#),
        );
        check(
            "{{.PodCIDRRanges}} {{.Routes}}",
            "10.1.0.0/24, fd00::/64",
            Ok("[10.1.0.0/24 fd00::/64] [0.0.0.0/0 ::/0]"),
        );
    }

    #[test]
    fn documented_range_template_single_and_dual_stack() {
        check(
            DOC_TEMPLATE,
            "10.244.1.0/24",
            Ok(
                r#"{"name":"containerd-net","plugins":[{"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}]}"#,
            ),
        );
        check(
            DOC_TEMPLATE,
            "10.244.1.0/24,fd00:1::/64",
            Ok(
                r#"{"name":"containerd-net","plugins":[{"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}], [{"subnet":"fd00:1::/64"}]],"routes":[{"dst":"0.0.0.0/0"}, {"dst":"::/0"}]}}]}"#,
            ),
        );
    }

    #[test]
    fn trimming_dot_else_and_comments() {
        check("a  {{- /* note */ -}}  b", "10.0.0.0/8", Ok("ab"));
        check("{{range .Routes}}<{{.}}>{{end}}", "fd00::/64", Ok("<::/0>"));
        check(
            "{{if .PodCIDR}}yes{{else}}no{{end}}",
            "10.0.0.0/8",
            Ok("yes"),
        );
        check(
            "{{range $r := .Routes}}{{$r}}{{end}}",
            "10.0.0.0/8",
            Ok("0.0.0.0/0"),
        );
    }

    #[test]
    fn errors() {
        check("{{.Nope}}", "10.0.0.0/8", Err(()));
        check("{{range .Routes}}", "10.0.0.0/8", Err(()));
        check("{{end}}", "10.0.0.0/8", Err(()));
        check("{{.PodCIDR | printf}}", "10.0.0.0/8", Err(()));
        check("{{ .PodCIDR", "10.0.0.0/8", Err(()));
        assert!(matches!(
            ConfTemplateData::from_pod_cidrs("10.0.0.0/8,bogus"),
            Err(TemplateError::InvalidCidr { .. })
        ));
    }

    #[test]
    fn writes_the_conflist() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("tmpl");
        std::fs::write(&template, r#"{"subnet":"{{.PodCIDR}}"}"#).unwrap();
        let conf_dir = dir.path().join("net.d");
        let data = ConfTemplateData::from_pod_cidrs("10.1.0.0/16").unwrap();
        let path = write_conf_from_template(&template, &conf_dir, &data).unwrap();
        assert_eq!(path, conf_dir.join("10-containerd-net.conflist"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"{"subnet":"10.1.0.0/16"}"#
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
}
