//! The two upgrades of a token-checked request: SPDY/3.1 (protocol
//! negotiation with `X-Stream-Protocol-Version`, then a SPDY session) and
//! WebSocket (subprotocol negotiation, then channels), each handing the
//! connection to exec/attach or port forwarding.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::http::{header, HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::idle::IdleTracker;
use super::portforward::{
    parse_port, port_channels, serve_spdy_port_forward, serve_ws_port_forward,
};
use super::pump::Command;
use super::remotecommand::{
    negotiate, serve_spdy_command, ProtocolVersion, StreamOptions, ACCEPTED_PROTOCOLS_HEADER,
    PORT_FORWARD_PROTOCOLS, PROTOCOL_HEADER, SPDY_PROTOCOLS,
};
use super::server::{text, Body, Inner};
use super::spdy::{Role, Session, SessionConfig};
use super::token::CachedRequest;
use super::websocket::{
    accept_key, command_channels, negotiate_ws, requested_protocols, serve_ws_command, Codec,
    WsChannels, WS_EXEC_PROTOCOLS, WS_PORT_FORWARD_PROTOCOLS,
};

fn options(request: &CachedRequest) -> (StreamOptions, Option<Command>) {
    match request {
        CachedRequest::Exec(e) => (
            StreamOptions {
                stdin: e.stdin,
                stdout: e.stdout,
                stderr: e.stderr,
                tty: e.tty,
            },
            Some(Command::Exec {
                container_id: e.container_id.clone(),
                cmd: e.cmd.clone(),
            }),
        ),
        CachedRequest::Attach(a) => (
            StreamOptions {
                stdin: a.stdin,
                stdout: a.stdout,
                stderr: a.stderr,
                tty: a.tty,
            },
            Some(Command::Attach {
                container_id: a.container_id.clone(),
            }),
        ),
        CachedRequest::PortForward(_) => (StreamOptions::default(), None),
    }
}

pub(super) fn upgrade_spdy(
    req: Request<Incoming>,
    request: CachedRequest,
    inner: Arc<Inner>,
) -> Response<Body> {
    let headers = req.headers();
    let server_protocols = if matches!(request, CachedRequest::PortForward(_)) {
        PORT_FORWARD_PROTOCOLS
    } else {
        SPDY_PROTOCOLS
    };
    let client: Vec<&str> = headers
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if client.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            format!("unable to upgrade: {PROTOCOL_HEADER} is required"),
        );
    }
    let Some(protocol) = negotiate(client.iter().copied(), server_protocols) else {
        let mut resp = text(
            StatusCode::FORBIDDEN,
            format!("unable to upgrade: unable to negotiate protocol: client supports {client:?}, server accepts {server_protocols:?}"),
        );
        for p in server_protocols {
            resp.headers_mut()
                .append(ACCEPTED_PROTOCOLS_HEADER, HeaderValue::from_static(p));
        }
        return resp;
    };
    let connection = headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !connection.contains("upgrade") || !upgrade.contains("spdy/3.1") {
        return text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        );
    }
    let config = SessionConfig {
        idle_timeout: inner.config.idle_timeout,
        close_timeout: inner.config.close_timeout,
        ..SessionConfig::default()
    };
    let shutdown = inner.shutdown.clone();
    let tasks = inner.tasks.clone();
    tasks.spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => return tracing::warn!(error = %e, "spdy upgrade failed"),
        };
        let (session, incoming) = match Session::start(TokioIo::new(upgraded), Role::Server, config)
        {
            Ok(s) => s,
            Err(e) => return tracing::warn!(error = %e, "spdy session failed to start"),
        };
        let runtime = inner.runtime.clone();
        let timeout = inner.config.stream_creation_timeout;
        let serve = async {
            match (options(&request), request) {
                ((_, None), CachedRequest::PortForward(pf)) => {
                    serve_spdy_port_forward(
                        session.clone(),
                        incoming,
                        pf.pod_sandbox_id,
                        runtime,
                        timeout,
                    )
                    .await
                }
                ((opts, Some(command)), _) => {
                    let version =
                        ProtocolVersion::from_name(protocol).unwrap_or(ProtocolVersion::V1);
                    serve_spdy_command(
                        session.clone(),
                        incoming,
                        version,
                        opts,
                        command,
                        runtime,
                        timeout,
                    )
                    .await
                }
                _ => {}
            }
        };
        tokio::select! {
            () = serve => {}
            () = shutdown.cancelled() => session.abort(),
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    resp
}

pub(super) fn upgrade_websocket(
    req: Request<Incoming>,
    request: CachedRequest,
    inner: Arc<Inner>,
) -> Response<Body> {
    let headers = req.headers();
    let Some(accept) = accept_key(headers) else {
        return text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: invalid websocket handshake",
        );
    };
    let requested = requested_protocols(headers);
    let ports = match &request {
        CachedRequest::PortForward(pf) => match ws_ports(&pf.port, req.uri().query()) {
            Ok(p) => p,
            Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
        },
        _ => Vec::new(),
    };
    let allowed = if matches!(request, CachedRequest::PortForward(_)) {
        WS_PORT_FORWARD_PROTOCOLS
    } else {
        WS_EXEC_PROTOCOLS
    };
    let Some(protocol) = negotiate_ws(&requested, allowed) else {
        return text(
            StatusCode::FORBIDDEN,
            format!("requested protocol(s) are not supported: {requested:?}; supports {allowed:?}"),
        );
    };
    let idle = IdleTracker::new(inner.config.idle_timeout);
    let shutdown = inner.shutdown.clone();
    let tasks = inner.tasks.clone();
    tasks.spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => return tracing::warn!(error = %e, "websocket upgrade failed"),
        };
        let codec = Codec::of(protocol);
        let runtime = inner.runtime.clone();
        let serve = async {
            match (options(&request), request) {
                ((_, None), CachedRequest::PortForward(pf)) => {
                    let conn = WsChannels::start(
                        upgraded,
                        codec,
                        false,
                        &port_channels(ports.len()),
                        idle,
                        &shutdown,
                    )
                    .await;
                    serve_ws_port_forward(conn, ports, pf.pod_sandbox_id, runtime).await
                }
                ((opts, Some(command)), _) => {
                    let v5 = protocol == "v5.channel.k8s.io";
                    let conn = WsChannels::start(
                        upgraded,
                        codec,
                        v5,
                        &command_channels(opts),
                        idle,
                        &shutdown,
                    )
                    .await;
                    serve_ws_command(conn, protocol, opts, command, runtime).await
                }
                _ => {}
            }
        };
        tokio::select! {
            () = serve => {}
            () = shutdown.cancelled() => {}
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if !protocol.is_empty() {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
    }
    resp
}

/// The ports of a WebSocket port forward: the CRI request's, else the
/// `?port=` query (repeated or comma-separated), each 1-65535.
fn ws_ports(requested: &[i32], query: Option<&str>) -> Result<Vec<u16>, String> {
    if !requested.is_empty() {
        return requested
            .iter()
            .map(|&p| {
                u16::try_from(p)
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| format!("invalid port {p}"))
            })
            .collect();
    }
    let values: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "port")
        .map(|(_, v)| v)
        .collect();
    if values.is_empty() {
        return Err("query parameter \"port\" is required".to_owned());
    }
    let mut ports = Vec::new();
    for v in values {
        if v.is_empty() {
            return Err("query parameter \"port\" cannot be empty".to_owned());
        }
        for p in v.split(',') {
            ports.push(parse_port(p)?);
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn websocket_ports_come_from_the_request_or_the_query() {
        assert_eq!(ws_ports(&[80, 8080], Some("port=1")), Ok(vec![80, 8080]));
        assert_eq!(
            ws_ports(&[], Some("port=80&port=81,82")),
            Ok(vec![80, 81, 82])
        );
        assert!(ws_ports(&[], None).unwrap_err().contains("required"));
        assert!(ws_ports(&[], Some("port=0"))
            .unwrap_err()
            .contains("must be > 0"));
        assert!(ws_ports(&[], Some("port=70000")).is_err());
        assert!(ws_ports(&[70000], None).is_err());
    }
}
