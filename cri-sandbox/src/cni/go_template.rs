//! A small Go `text/template` engine, enough for CNI config templates:
//! `{{.Field}}`, `{{.}}`, `{{$var}}`, `{{range [$i, ]$x := .List}}`,
//! `{{range .List}}`, `{{if X}}`, `{{else}}`, `{{end}}`, `{{/* comments */}}`
//! and `{{-`/`-}}` trimming. Values print as Go's `fmt` does (`[a b]`).

use super::template::TemplateError;

/// Renders `template`; `fields` resolves `.Field` on the root data.
pub(crate) fn render(
    template: &str,
    fields: &dyn Fn(&str) -> Option<Val>,
) -> Result<String, TemplateError> {
    let tokens = tokenize(template)?;
    let mut pos = 0;
    let (nodes, stop) = parse_nodes(&tokens, &mut pos)?;
    if let Some(stop) = stop {
        return Err(TemplateError::Parse(format!("unexpected {{{{{stop}}}}}")));
    }
    let mut out = String::new();
    let mut scope = Scope {
        fields,
        vars: Vec::new(),
    };
    execute(&nodes, &Val::Root, &mut scope, &mut out)?;
    Ok(out)
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
        let trim_before =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
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
    if s.starts_with('$')
        && s[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Ok(Expr::Var(s.to_owned()));
    }
    Err(TemplateError::Parse(format!(
        "unsupported expression {s:?}"
    )))
}

/// Parses nodes up to `{{end}}` or `{{else}}`, returned as the stop word.
fn parse_nodes(
    tokens: &[Token],
    pos: &mut usize,
) -> Result<(Vec<Node>, Option<String>), TemplateError> {
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
        _ => {
            return Err(TemplateError::Parse(format!(
                "bad range variables {spec:?}"
            )))
        }
    };
    Ok((index, elem, parse_expr(expr)?))
}

/// A value in the template's data.
#[derive(Clone, Debug)]
pub(crate) enum Val {
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
    fields: &'a dyn Fn(&str) -> Option<Val>,
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
            (scope.fields)(field).ok_or_else(|| {
                TemplateError::Execute(format!("can't evaluate field {field} in the template data"))
            })
        }
    }
}

fn execute(
    nodes: &[Node],
    dot: &Val,
    scope: &mut Scope<'_>,
    out: &mut String,
) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Print(expr) => out.push_str(&eval(expr, dot, scope)?.print()?),
            Node::If {
                cond,
                body,
                otherwise,
            } => {
                let branch = if eval(cond, dot, scope)?.truthy() {
                    body
                } else {
                    otherwise
                };
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
    use super::*;

    fn fields(field: &str) -> Option<Val> {
        match field {
            "Name" => Some(Val::Str("pods".into())),
            "Empty" => Some(Val::Str(String::new())),
            "List" => Some(Val::List(vec!["a".into(), "b".into(), "c".into()])),
            "None" => Some(Val::List(Vec::new())),
            _ => None,
        }
    }

    fn check(template: &str, expected: Result<&str, ()>) {
        assert_eq!(
            render(template, &fields).as_deref().map_err(|_| ()),
            expected,
            "{template}"
        );
    }

    #[test]
    fn printing_values() {
        check("{{.Name}}/{{.List}}/{{.None}}", Ok("pods/[a b c]/[]"));
        check("{{ .Name }}", Ok("pods"));
    }

    #[test]
    fn range_with_index_and_separator() {
        check(
            "{{range $i, $x := .List}}{{if $i}},{{end}}{{$i}}={{$x}}{{end}}",
            Ok("0=a,1=b,2=c"),
        );
        check("{{range .None}}x{{else}}empty{{end}}", Ok("empty"));
        check("{{range .List}}{{range $.List}}{{end}}{{end}}", Err(()));
    }

    #[test]
    fn conditions_and_trimming() {
        check("{{if .Empty}}y{{else}}n{{end}}", Ok("n"));
        check("[\n  {{- .Name -}}\n]", Ok("[pods]"));
        check("{{- .Name}}  x", Ok("pods  x"));
    }

    #[test]
    fn errors_name_the_problem() {
        check("{{.Missing}}", Err(()));
        check("{{$nope}}", Err(()));
        check("{{range .Name}}{{end}}", Err(()));
        check("{{if .Name}}", Err(()));
        check("{{else}}", Err(()));
        check("{{.}}", Err(()));
    }
}
