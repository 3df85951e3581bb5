//! W3C Trace Context (`traceparent`, `tracestate`): a request stays followable across
//! the gateway in the operator's tracing system.
//!
//! A valid incoming `traceparent` is continued: same trace id and flags, with the
//! gateway's own span id as the parent the upstream sees, and `tracestate` passed on
//! when it is one header within the specification's 512 characters (else dropped).
//! One that is absent or invalid starts a new trace (and its `tracestate` is dropped,
//! as the recommendation says). The trace id goes into the access-log line, and the
//! same context onto the requests the gateway makes for the request at the identity
//! provider (token exchange, refresh, userinfo, revocation), also when a refresh runs in
//! a task of its own ([`propagate`]).

use crate::proxy::headers::Added;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::fmt;

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The gateway's span: the parent of what the upstream and the provider see.
    pub span_id: u64,
    pub flags: u8,
    /// The caller's span, when the trace is continued (its `tracestate` is kept).
    pub parent_id: Option<u64>,
}

/// The sampled bit of the flags.
pub const SAMPLED: u8 = 1;

/// The request being served: its context, and whether its session was refreshed.
struct Current {
    context: TraceContext,
    refreshed: std::cell::Cell<bool>,
}

tokio::task_local! {
    static CURRENT: Current;
}

impl TraceContext {
    /// The context of a request with `headers`. A trace started here is marked sampled
    /// when `sampling` (spans are exported: `otlp.rs`).
    pub fn for_request(headers: &HeaderMap, sampling: bool) -> Self {
        let span_id = nonzero_random();
        match headers.get(&TRACEPARENT).and_then(|value| parse(value.as_bytes())) {
            Some((trace_id, flags, parent)) => Self { trace_id, span_id, flags, parent_id: Some(parent) },
            None => Self {
                trace_id: rand::random::<u128>().max(1),
                span_id,
                flags: if sampling { SAMPLED } else { 0 },
                parent_id: None,
            },
        }
    }

    fn continued(&self) -> bool {
        self.parent_id.is_some()
    }

    /// The trace id as 32 lower-case hex digits, for the log.
    pub fn trace_id(&self) -> impl fmt::Display + '_ {
        TraceId(self.trace_id)
    }

    pub fn traceparent(&self) -> HeaderValue {
        // Written into one buffer: this runs for every proxied request.
        let mut text = [b'-'; 55];
        text[..2].copy_from_slice(b"00");
        hex(&mut text[3..35], self.trace_id);
        hex(&mut text[36..52], u128::from(self.span_id));
        hex(&mut text[53..55], u128::from(self.flags));
        HeaderValue::from_bytes(&text).expect("hex digits and dashes are a valid header value")
    }

    /// Sets this context on a request going upstream: the client's `traceparent` is
    /// replaced (in `added`), its `tracestate` kept only when the trace is continued.
    pub fn forward(&self, headers: &mut HeaderMap, added: &mut Added) {
        headers.remove(&TRACEPARENT);
        let mut states = headers.get_all(&TRACESTATE).iter();
        let kept = self.continued()
            && match (states.next(), states.next()) {
                (None, _) => true,
                (Some(state), None) => state.len() <= MAX_TRACESTATE,
                (Some(_), Some(_)) => false,
            };
        if !kept {
            headers.remove(&TRACESTATE);
        }
        added.push((TRACEPARENT.clone(), self.traceparent()));
    }

    /// Runs `future` with this as the current context.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(Current { context: self, refreshed: std::cell::Cell::new(false) }, future).await
    }
}

/// The context of the request being served, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|current| current.context).ok()
}

/// Notes that the request being served refreshed its session (for its span).
pub fn note_refresh() {
    let _ = CURRENT.try_with(|current| current.refreshed.set(true));
}

/// Whether the request being served refreshed its session.
pub fn refreshed() -> bool {
    CURRENT.try_with(|current| current.refreshed.get()).unwrap_or(false)
}

/// `future`, under the context current now (for a task spawned for a request: read
/// here, not when the task first runs, where there is none).
pub fn propagate<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let context = current();
    async move {
        match context {
            Some(context) => context.scope(future).await,
            None => future.await,
        }
    }
}

/// Adds the current context to a back-channel request's headers.
pub fn add_current(headers: &mut HeaderMap) {
    if let Some(context) = current() {
        headers.insert(TRACEPARENT.clone(), context.traceparent());
    }
}

/// The current context as headers, for a back-channel request built with reqwest.
pub fn current_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    add_current(&mut headers);
    headers
}

/// The longest `tracestate` passed on (W3C Trace Context: 512 characters).
const MAX_TRACESTATE: usize = 512;

/// Writes the low `out.len() * 4` bits of `value` as lower-case hex into `out`.
fn hex(out: &mut [u8], mut value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

struct TraceId(u128);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

fn nonzero_random() -> u64 {
    rand::random::<u64>().max(1)
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`: version 00, lower-case hex,
/// neither id all zeros. A later version is read by its first four fields, as the
/// specification asks; version `ff` is invalid.
fn parse(value: &[u8]) -> Option<(u128, u8, u64)> {
    if value.len() < 55 || (value.len() > 55 && (value[55] != b'-' || value.starts_with(b"00"))) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| {
        let digits = &value[range];
        digits.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)).then_some(digits)
    };
    let version = field(0..2)?;
    if version == b"ff" || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let hex = |digits: &[u8]| u128::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok();
    let trace_id = hex(field(3..35)?)?;
    let parent_id = hex(field(36..52)?)?;
    let flags = hex(field(53..55)?)? as u8;
    (trace_id != 0 && parent_id != 0).then_some((trace_id, flags, parent_id as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(traceparent: &str) -> TraceContext {
        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, traceparent.parse().unwrap());
        TraceContext::for_request(&headers, false)
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_span_of_our_own() {
        let context = with("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert!(context.continued());
        assert_eq!(context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let sent = context.traceparent();
        let sent = sent.to_str().unwrap();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && sent.ends_with("-01"), "{sent}");
        assert!(!sent.contains("00f067aa0ba902b7"), "the gateway is the upstream's parent: {sent}");
        assert_eq!(parse(sent.as_bytes()).map(|(id, _, _)| id), Some(context.trace_id));
    }

    #[test]
    fn invalid_or_absent_traceparents_start_a_new_trace() {
        for invalid in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let context = with(invalid);
            assert!(!context.continued(), "{invalid}");
            assert_ne!(context.trace_id, 0);
            assert_ne!(context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736", "{invalid}");
        }
        let fresh = TraceContext::for_request(&HeaderMap::new(), false);
        assert!(parse(fresh.traceparent().as_bytes()).is_some(), "what we start is valid");
        assert_eq!(fresh.flags, 0, "not sampled when nothing is exported");
        assert_eq!(TraceContext::for_request(&HeaderMap::new(), true).flags, SAMPLED);
        assert!(with("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later").continued(), "a later version");
    }

    #[test]
    fn forwarding_replaces_the_traceparent_and_keeps_tracestate_only_when_continued() {
        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, "garbage".parse().unwrap());
        headers.insert(&TRACESTATE, "vendor=1".parse().unwrap());
        let mut added = Added::new();
        TraceContext::for_request(&headers, false).forward(&mut headers, &mut added);
        assert!(!headers.contains_key(&TRACEPARENT) && !headers.contains_key(&TRACESTATE));
        assert_eq!(added.len(), 1);

        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        headers.insert(&TRACESTATE, "vendor=1".parse().unwrap());
        TraceContext::for_request(&headers, false).forward(&mut headers, &mut Added::new());
        assert_eq!(headers.get(&TRACESTATE).unwrap(), "vendor=1");

        headers.insert(&TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        headers.insert(&TRACESTATE, format!("v={}", "x".repeat(600)).parse().unwrap());
        TraceContext::for_request(&headers, false).forward(&mut headers, &mut Added::new());
        assert!(!headers.contains_key(&TRACESTATE), "longer than the specification allows");
    }

    #[test]
    fn the_traceparent_is_written_as_the_specification_spells_it() {
        let context = TraceContext { trace_id: 0xab, span_id: 0x1_0000_0000_0001, flags: 1, parent_id: Some(7) };
        assert_eq!(context.traceparent(), "00-000000000000000000000000000000ab-0001000000000001-01");
    }
}
