//! containerd's `cni.conf_template`: on UpdateRuntimeConfig with a pod
//! CIDR, render the template (a Go `text/template` over `.PodCIDR`,
//! `.PodCIDRRanges` and `.Routes`) into `<conf_dir>/10-containerd-net.conflist`.
//! The subset of Go templates supported: `{{.Field}}`, `{{.}}`, `{{$var}}`,
//! `{{range [$i, ]$x := .List}}`, `{{range .List}}`, `{{if X}}`,
//! `{{else}}`, `{{end}}`, `{{/* comments */}}` and `{{-`/`-}}` trimming.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
pub fn render_conf_template(template: &str, data: &ConfTemplateData) -> Result<String, TemplateError> {
    let tokens = tokenize(template)?;
    let mut pos = 0;
    let (nodes, stop) = parse_nodes(&tokens, &mut pos)?;
    if let Some(stop) = stop {
        return Err(TemplateError::Parse(format!("unexpected {{{{{stop}}}}}")));
    }
    let mut out = String::new();
    let mut scope = Scope {
        data,
        vars: Vec::new(),
    };
    execute(&nodes, &Val::Root, &mut scope, &mut out)?;
    Ok(out)
}

/// Reads the template file, renders it and writes
/// `<conf_dir>/10-containerd-net.conflist` (0644, atomically; conf_dir is
/// created 0755 if missing). Returns the path written.
pub fn write_conf_from_template(
    template_path: &Path,
    conf_dir: &Path,
    data: &ConfTemplateData,
) -> Result<PathBuf, TemplateError> {
    let template = std::fs::read_to_string(template_path).map_err(|source| TemplateError::Read {
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

#[derive(Debug, PartialEq)]
enum Token {
    Text(String),
    Action(String),
}

fn tokenize(src: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            let text = if trim_next { rest.trim_start() } else { rest };
            tokens.push(Token::Text(text.to_owned()));
            break;
        };
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let trim_before = after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_before {
            text = text.trim_end();
        }
        tokens.push(Token::Text(text.to_owned()));
        let close = after
            .find("}}")
            .ok_or_else(|| TemplateError::Parse("unclosed action".into()))?;
        let mut inner = &after[..close];
        if trim_before {
            inner = &inner[1..];
        }
        trim_next = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            tokens.push(Token::Action(inner.to_owned()));
        }
        rest = &after[close + 2..];
    }
    Ok(tokens)
}

#[derive(Debug)]
enum Expr {
    Dot,
    Field(String),
    Var(String),
}

#[derive(Debug)]
enum Node {
    Text(String),
    Print(Expr),
    Range {
        index: Option<String>,
        elem: Option<String>,
        expr: Expr,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    If {
        cond: Expr,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

fn parse_expr(s: &str) -> Result<Expr, TemplateError> {
    let s = s.trim();
    if s == "." {
        return Ok(Expr::Dot);
    }
    if let Some(field) = s.strip_prefix('.') {
        if !field.is_empty() && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(Expr::Field(field.to_owned()));
        }
    }
    if s.starts_with('$') && s[1..].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(Expr::Var(s.to_owned()));
    }
    Err(TemplateError::Parse(format!("unsupported expression {s:?}")))
}

/// Parses nodes up to `{{end}}` or `{{else}}`, returned as the stop word.
fn parse_nodes(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let token = &tokens[*pos];
        *pos += 1;
        match token {
            Token::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t.clone()));
                }
            }
            Token::Action(a) if a == "end" || a == "else" => return Ok((nodes, Some(a.clone()))),
            Token::Action(a) => {
                if let Some(spec) = a.strip_prefix("range ") {
                    let (index, elem, expr) = parse_range_spec(spec)?;
                    let (body, otherwise) = parse_block(tokens, pos)?;
                    nodes.push(Node::Range {
                        index,
                        elem,
                        expr,
                        body,
                        otherwise,
                    });
                } else if let Some(cond) = a.strip_prefix("if ") {
                    let cond = parse_expr(cond)?;
                    let (body, otherwise) = parse_block(tokens, pos)?;
                    nodes.push(Node::If {
                        cond,
                        body,
                        otherwise,
                    });
                } else {
                    nodes.push(Node::Print(parse_expr(a)?));
                }
            }
        }
    }
    Ok((nodes, None))
}

/// The body of a `range`/`if`, and its `else` part, through `{{end}}`.
fn parse_block(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Vec<Node>), TemplateError> {
    let (body, stop) = parse_nodes(tokens, pos)?;
    match stop.as_deref() {
        Some("end") => Ok((body, Vec::new())),
        Some("else") => {
            let (otherwise, stop) = parse_nodes(tokens, pos)?;
            if stop.as_deref() != Some("end") {
                return Err(TemplateError::Parse("missing {{end}}".into()));
            }
            Ok((body, otherwise))
        }
        _ => Err(TemplateError::Parse("missing {{end}}".into())),
    }
}

type RangeSpec = (Option<String>, Option<String>, Expr);

fn parse_range_spec(spec: &str) -> Result<RangeSpec, TemplateError> {
    let Some((vars, expr)) = spec.split_once(":=") else {
        return Ok((None, None, parse_expr(spec)?));
    };
    let vars: Vec<&str> = vars.split(',').map(str::trim).collect();
    let valid = |v: &str| v.len() > 1 && v.starts_with('$');
    let (index, elem) = match vars.as_slice() {
        [e] if valid(e) => (None, Some(e.to_string())),
        [i, e] if valid(i) && valid(e) => (Some(i.to_string()), Some(e.to_string())),
        _ => return Err(TemplateError::Parse(format!("bad range variables {spec:?}"))),
    };
    Ok((index, elem, parse_expr(expr)?))
}

#[derive(Clone, Debug)]
enum Val {
    Root,
    Str(String),
    List(Vec<String>),
    Int(usize),
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Root => true,
            Val::Str(s) => !s.is_empty(),
            Val::List(l) => !l.is_empty(),
            Val::Int(i) => *i != 0,
        }
    }

    /// Go's `fmt.Print` of the value: a slice is `[a b]`.
    fn print(&self) -> Result<String, TemplateError> {
        Ok(match self {
            Val::Root => return Err(TemplateError::Execute("cannot print the root data".into())),
            Val::Str(s) => s.clone(),
            Val::List(l) => format!("[{}]", l.join(" ")),
            Val::Int(i) => i.to_string(),
        })
    }
}

struct Scope<'a> {
    data: &'a ConfTemplateData,
    vars: Vec<(String, Val)>,
}

fn eval(expr: &Expr, dot: &Val, scope: &Scope<'_>) -> Result<Val, TemplateError> {
    match expr {
        Expr::Dot => Ok(dot.clone()),
        Expr::Var(name) => scope
            .vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| TemplateError::Execute(format!("undefined variable {name:?}"))),
        Expr::Field(field) => {
            if !matches!(dot, Val::Root) {
                return Err(TemplateError::Execute(format!(
                    "can't evaluate field {field} in a non-struct value"
                )));
            }
            match field.as_str() {
                "PodCIDR" => Ok(Val::Str(scope.data.pod_cidr.clone())),
                "PodCIDRRanges" => Ok(Val::List(scope.data.pod_cidr_ranges.clone())),
                "Routes" => Ok(Val::List(scope.data.routes.clone())),
                other => Err(TemplateError::Execute(format!(
                    "can't evaluate field {other} in type server.cniConfigTemplate"
                ))),
            }
        }
    }
}

fn execute(nodes: &[Node], dot: &Val, scope: &mut Scope<'_>, out: &mut String) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Print(expr) => out.push_str(&eval(expr, dot, scope)?.print()?),
            Node::If { cond, body, otherwise } => {
                let branch = if eval(cond, dot, scope)?.truthy() { body } else { otherwise };
                execute(branch, dot, scope, out)?;
            }
            Node::Range {
                index,
                elem,
                expr,
                body,
                otherwise,
            } => {
                let items = match eval(expr, dot, scope)? {
                    Val::List(l) => l,
                    other => {
                        return Err(TemplateError::Execute(format!(
                            "range can't iterate over {other:?}"
                        )))
                    }
                };
                if items.is_empty() {
                    execute(otherwise, dot, scope, out)?;
                    continue;
                }
                for (i, item) in items.into_iter().enumerate() {
                    let depth = scope.vars.len();
                    if let Some(index) = index {
                        scope.vars.push((index.clone(), Val::Int(i)));
                    }
                    if let Some(elem) = elem {
                        scope.vars.push((elem.clone(), Val::Str(item.clone())));
                    }
                    let result = execute(body, &Val::Str(item), scope, out);
                    scope.vars.truncate(depth);
                    result?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(template: &str, pod_cidrs: &str, expected: Result<&str, ()>) {
        let data = ConfTemplateData::from_pod_cidrs(pod_cidrs).unwrap();
        assert_eq!(
            render_conf_template(template, &data).as_deref().map_err(|_| ()),
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
        check(r#"{"subnet": "{{.PodCIDR}}"}"#, "10.244.1.0/24", Ok(r#"{"subnet": "10.244.1.0/24"}"#));
        check("{{.PodCIDRRanges}} {{.Routes}}", "10.1.0.0/24, fd00::/64", Ok("[10.1.0.0/24 fd00::/64] [0.0.0.0/0 ::/0]"));
    }

    #[test]
    fn documented_range_template_single_and_dual_stack() {
        check(
            DOC_TEMPLATE,
            "10.244.1.0/24",
            Ok(r#"{"name":"containerd-net","plugins":[{"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}]}"#),
        );
        check(
            DOC_TEMPLATE,
            "10.244.1.0/24,fd00:1::/64",
            Ok(r#"{"name":"containerd-net","plugins":[{"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}], [{"subnet":"fd00:1::/64"}]],"routes":[{"dst":"0.0.0.0/0"}, {"dst":"::/0"}]}}]}"#),
        );
    }

    #[test]
    fn trimming_dot_else_and_comments() {
        check("a  {{- /* note */ -}}  b", "10.0.0.0/8", Ok("ab"));
        check("{{range .Routes}}<{{.}}>{{end}}", "fd00::/64", Ok("<::/0>"));
        check("{{if .PodCIDR}}yes{{else}}no{{end}}", "10.0.0.0/8", Ok("yes"));
        check("{{range $r := .Routes}}{{$r}}{{end}}", "10.0.0.0/8", Ok("0.0.0.0/0"));
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
        assert_eq!(std::fs::read_to_string(&path).unwrap(), r#"{"subnet":"10.1.0.0/16"}"#);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    }
}
