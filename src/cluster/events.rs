//! Events between replicas, on one pub/sub channel (`{prefix}events`): what one
//! replica changed that the others hold in memory.
//!
//! - `session <sid>`: a session record was refreshed or ended: drop it from the caches.
//! - `denied <kind:id> <before_ms> <until>`: cookie sessions were ended (a sign-out,
//!   a back-channel logout, a revocation): refuse them until they would have ended
//!   anyway (`auth/denylist.rs`).
//!
//! Pub/sub delivers to whoever listens at the moment, nothing more. So every time the
//! follower (re)subscribes, it first resynchronizes: caches are dropped and the
//! denials are read again from their keys. A connection that stops answering its
//! pings is dropped and made again.

use super::Cluster;
use crate::auth::denylist::Denial;
use futures_util::StreamExt;
use std::time::Duration;

const PING_EVERY: Duration = Duration::from_secs(5);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Session { sid: String },
    Denied(Denial),
}

impl Event {
    pub fn encode(&self) -> String {
        match self {
            Event::Session { sid } => format!("session {sid}"),
            Event::Denied(denial) => format!("denied {}", denial.encode()),
        }
    }

    pub fn decode(text: &str) -> Option<Event> {
        match text.split_once(' ')? {
            ("session", sid) if !sid.is_empty() && !sid.contains(' ') => Some(Event::Session { sid: sid.to_owned() }),
            ("denied", denial) => Denial::decode(denial).map(Event::Denied),
            _ => None,
        }
    }
}

/// What a replica does with the events.
pub trait Follower: Send + Sync {
    /// After every (re)subscription, before the first event: forget what may have
    /// been missed.
    fn resync(&self) -> impl Future<Output = ()> + Send;
    fn event(&self, event: Event);
}

/// Follows the events until the process ends, reconnecting with a back-off.
pub async fn follow(cluster: &Cluster, follower: &impl Follower) {
    let mut retry = FIRST_RETRY;
    loop {
        match tokio::time::timeout(PING_EVERY, cluster.client().get_async_pubsub()).await {
            Ok(Ok(pubsub)) => {
                let (mut sink, mut stream) = pubsub.split();
                match tokio::time::timeout(PING_EVERY, sink.subscribe(cluster.channel())).await {
                    Ok(Ok(())) => {
                        retry = FIRST_RETRY;
                        follower.resync().await;
                        cluster.set_following(true);
                        tracing::info!("following the other replicas' events");
                        let mut ping = tokio::time::interval(PING_EVERY);
                        ping.tick().await;
                        loop {
                            tokio::select! {
                                message = stream.next() => match message {
                                    Some(message) => match std::str::from_utf8(message.get_payload_bytes()).ok().and_then(Event::decode) {
                                        Some(event) => follower.event(event),
                                        None => tracing::warn!("an event from another replica was not understood"),
                                    },
                                    None => break,
                                },
                                _ = ping.tick() => {
                                    let answered = tokio::time::timeout(PING_EVERY, sink.ping::<redis::Value>()).await;
                                    if !matches!(answered, Ok(Ok(_))) {
                                        break;
                                    }
                                }
                            }
                        }
                        cluster.set_following(false);
                        tracing::warn!("lost the other replicas' events; reconnecting");
                    }
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, retry_in = ?retry, "cannot follow the other replicas' events")
                    }
                    Err(_) => tracing::warn!(retry_in = ?retry, "cannot follow the other replicas' events: no answer"),
                }
            }
            Ok(Err(err)) => tracing::warn!(error = %err, retry_in = ?retry, "cannot follow the other replicas' events"),
            Err(_) => tracing::warn!(retry_in = ?retry, "cannot follow the other replicas' events: no answer"),
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::denylist::Denied;

    #[test]
    fn events_round_trip_and_nothing_else_decodes() {
        let denial = Denial { who: Denied::User("a b".into()), before_ms: 5, until: 17 };
        for event in [Event::Session { sid: "abc".into() }, Event::Denied(denial)] {
            assert_eq!(Event::decode(&event.encode()), Some(event));
        }
        for junk in
            ["", "session", "session ", "denied a", "denied sub:YQ 1", "session a b", "other a", "denied sub:YQ 1 2 3"]
        {
            assert_eq!(Event::decode(junk), None, "{junk:?}");
        }
    }
}
