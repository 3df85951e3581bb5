//! Once across replicas: the first replica to take a key's lock runs the work, writes
//! its result where every replica reads it, and lets go of the lock; the others wait
//! for that result instead of running the work again. Used for refreshes: two replicas
//! presenting one rotating refresh token at once make some providers revoke the grant.
//!
//! Rules:
//! 1. The lock is `SET {prefix}refresh_lock:{id} {instance} NX PX {bound}`: it frees
//!    itself after `bound` if its holder dies.
//! 2. A lock that names this instance is this instance's own, taken by a `SET` whose
//!    answer timed out (a frozen Redis runs queued commands when it thaws). One task per
//!    key runs here at a time (the local single flight), so it may carry on with it.
//! 3. The result is read before and after the lock is taken: one written in between
//!    is not run again.
//! 4. Waiting is bounded by `bound` and polls every [`POLL`]; a holder that never
//!    writes a result (its process died mid-refresh) is a timeout: the caller decides
//!    (the Redis store answers 503; cookie sessions refresh in this process).
//! 5. The lock is released only if it is still this instance's (compare and delete).

use super::{Cluster, ClusterError, When};
use std::time::Duration;
use tokio::time::Instant;

pub const POLL: Duration = Duration::from_millis(20);

const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Whose result [`once`] returns.
#[derive(Debug)]
pub enum Shared<T> {
    /// This replica ran the work.
    Ours(T),
    /// Another replica's (or an earlier) result, read from Redis.
    Theirs(T),
}

/// Runs `work` unless a result for `id` is (or becomes, within `bound`) readable;
/// `write` says how to store a result for the others, and for how long (`None`: a
/// result not to share, such as a failure). After an error, `work` has not run.
pub async fn once<T, W>(
    cluster: &Cluster,
    id: &str,
    bound: Duration,
    read: impl Fn(&[u8]) -> Option<T>,
    work: impl FnOnce() -> W,
    write: impl Fn(&T) -> Option<(Vec<u8>, Duration)>,
) -> Result<Shared<T>, ClusterError>
where
    W: Future<Output = T>,
{
    let (result_key, lock_key) = (cluster.key("refresh", id), cluster.key("refresh_lock", id));
    let instance = cluster.instance.as_bytes();
    let readable = |bytes: Option<Vec<u8>>| bytes.as_deref().and_then(&read);
    let deadline = Instant::now() + bound;
    let mut work = Some(work);
    loop {
        if let Some(theirs) = readable(cluster.get(&result_key).await?) {
            return Ok(Shared::Theirs(theirs));
        }
        let ours = cluster.set(&lock_key, instance, bound, When::Absent).await?
            || cluster.get(&lock_key).await?.as_deref() == Some(instance);
        if ours {
            let result = match readable(cluster.get(&result_key).await?) {
                Some(theirs) => Shared::Theirs(theirs),
                None => {
                    let ours = work.take().expect("the work runs once: this returns right after")().await;
                    if let Some((bytes, ttl)) = write(&ours)
                        && let Err(err) = cluster.set(&result_key, &bytes, ttl, When::Always).await
                    {
                        tracing::warn!(error = %err, "could not share a refresh with the other replicas");
                    }
                    Shared::Ours(ours)
                }
            };
            let mut release = redis::cmd("EVAL");
            release.arg(RELEASE).arg(1).arg(&lock_key).arg(instance);
            if let Err(err) = cluster.run::<i64>("release", &release).await {
                tracing::debug!(error = %err, "refresh lock not released; it expires by itself");
            }
            return Ok(result);
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::Timeout(bound));
        }
        tokio::time::sleep(POLL).await;
    }
}
