//! The request cache behind the streaming URLs: each Exec/Attach/PortForward
//! request is stored under a random URL-safe token that is single use,
//! expires after a TTL (1 minute) and of which at most 1000 are in flight,
//! as the kubelet streaming server's request cache.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use cri_api::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use rand::RngCore;

use super::error::StreamingError;

/// Tokens live this long.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// At most this many tokens are in flight.
pub const MAX_IN_FLIGHT: usize = 1000;
/// Random bytes per token (base64url without padding: 11 characters).
const TOKEN_BYTES: usize = 8;

/// The time source, injected so tests control expiry.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A request waiting for its client to connect.
#[derive(Debug, Clone, PartialEq)]
pub enum CachedRequest {
    /// `/exec/<token>`.
    Exec(ExecRequest),
    /// `/attach/<token>`.
    Attach(AttachRequest),
    /// `/portforward/<token>`.
    PortForward(PortForwardRequest),
}

struct Entry {
    token: String,
    request: CachedRequest,
    expires: Instant,
}

/// The token → request cache.
pub struct TokenCache {
    entries: Mutex<VecDeque<Entry>>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    max_in_flight: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl TokenCache {
    /// A cache with the kubelet's TTL and capacity.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_limits(clock, TOKEN_TTL, MAX_IN_FLIGHT)
    }

    /// A cache with other limits.
    pub fn with_limits(clock: Arc<dyn Clock>, ttl: Duration, max_in_flight: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            clock,
            ttl,
            max_in_flight,
        }
    }

    /// Stores `request` and returns its new token.
    pub fn insert(&self, request: CachedRequest) -> Result<String, StreamingError> {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Entries are in insertion order and the TTL is fixed, so expired ones
        // are at the front.
        while entries.front().is_some_and(|e| e.expires <= now) {
            entries.pop_front();
        }
        if entries.len() >= self.max_in_flight {
            return Err(StreamingError::TooManyRequests);
        }
        let token = loop {
            let t = new_token();
            if !entries.iter().any(|e| e.token == t) {
                break t;
            }
        };
        entries.push_back(Entry {
            token: token.clone(),
            request,
            expires: now + self.ttl,
        });
        Ok(token)
    }

    /// Takes the request of `token`: `None` if unknown, used or expired.
    pub fn consume(&self, token: &str) -> Option<CachedRequest> {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let pos = entries.iter().position(|e| e.token == token)?;
        let entry = entries.remove(pos)?;
        (entry.expires > now).then_some(entry.request)
    }

    /// Tokens currently stored (including expired ones not yet dropped).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether no token is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[derive(Debug)]
    struct FakeClock(Mutex<Instant>);
    impl FakeClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }
    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    fn cache(max: usize) -> (TokenCache, Arc<FakeClock>) {
        let clock = Arc::new(FakeClock(Mutex::new(Instant::now())));
        (
            TokenCache::with_limits(clock.clone(), TOKEN_TTL, max),
            clock,
        )
    }

    fn exec(id: &str) -> CachedRequest {
        CachedRequest::Exec(ExecRequest {
            container_id: id.into(),
            ..Default::default()
        })
    }

    #[test]
    fn tokens_are_url_safe_and_distinct() {
        let (c, _) = cache(MAX_IN_FLIGHT);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_IN_FLIGHT {
            let t = c.insert(exec("a")).unwrap();
            assert_eq!(t.len(), 11);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{t}"
            );
            assert!(seen.insert(t));
        }
    }

    #[test]
    fn a_token_is_single_use() {
        let (c, _) = cache(10);
        let t = c.insert(exec("a")).unwrap();
        assert_eq!(c.consume(&t), Some(exec("a")));
        assert_eq!(c.consume(&t), None);
        assert_eq!(c.consume("unknown"), None);
    }

    #[test]
    fn a_token_expires_after_the_ttl() {
        let (c, clock) = cache(10);
        let early = c.insert(exec("early")).unwrap();
        let late = c.insert(exec("late")).unwrap();
        clock.advance(TOKEN_TTL - Duration::from_millis(1));
        assert_eq!(c.consume(&early), Some(exec("early")));
        clock.advance(Duration::from_millis(1));
        assert_eq!(c.consume(&late), None, "expired at exactly the TTL");
        assert!(c.is_empty());
    }

    #[test]
    fn capacity_is_bounded_and_freed_by_expiry_or_use() {
        let (c, clock) = cache(3);
        let first = c.insert(exec("1")).unwrap();
        clock.advance(Duration::from_secs(30));
        c.insert(exec("2")).unwrap();
        c.insert(exec("3")).unwrap();
        assert!(matches!(
            c.insert(exec("4")),
            Err(StreamingError::TooManyRequests)
        ));
        c.consume(&first).unwrap();
        c.insert(exec("4")).unwrap();
        assert!(matches!(
            c.insert(exec("5")),
            Err(StreamingError::TooManyRequests)
        ));
        clock.advance(TOKEN_TTL);
        c.insert(exec("6")).unwrap();
        assert_eq!(c.len(), 1, "expired entries were dropped on insert");
    }

    #[test]
    fn default_limits_are_the_kubelets() {
        let (c, _) = cache(MAX_IN_FLIGHT);
        for _ in 0..1000 {
            c.insert(exec("a")).unwrap();
        }
        assert!(matches!(
            c.insert(exec("a")),
            Err(StreamingError::TooManyRequests)
        ));
        assert_eq!(TokenCache::default().ttl, Duration::from_secs(60));
    }
}
