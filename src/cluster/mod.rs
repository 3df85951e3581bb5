//! What the replicas share, through Redis (`[redis]`): the session records of the Redis
//! store, the refresh single flight and its results for late requests, sign-outs, and
//! the events that keep every replica's caches true.
//!
//! Rules:
//! 1. Every command is bounded by `redis.command_timeout`: a Redis that is down or
//!    frozen answers no slower than a refusal. The caller decides what a failure means
//!    (a 503, or a degraded per-process mode); it is never a logout.
//! 2. Values that hold tokens are sealed with the cookie keys before they leave the
//!    process (`session/seal.rs`), so a Redis dump holds no usable token. Keys name
//!    sessions by their random id and refreshes by a hash, never by a token.
//! 3. The connection is made lazily and remade by itself: Redis may start after the
//!    gateway, and readiness never depends on it (a shared outage must not pull every
//!    replica out of its Service at once).
//! 4. The URL is never logged: it may carry a password.

pub mod events;
pub mod single_flight;

use crate::config::RedisConfig;
use crate::metrics::StoreErrors;
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

pub struct Cluster {
    client: redis::Client,
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    prefix: String,
    timeout: Duration,
    /// This process, as the owner of the refresh locks it takes.
    pub instance: String,
    errors: StoreErrors,
    /// Whether this replica hears the others' events now ([`events::follow`]); what
    /// is cached from Redis is trusted only then.
    following: AtomicBool,
}

impl Cluster {
    /// The connections, not yet made (see rule 3). Fails only for a URL the client
    /// cannot use, which `check` has already caught.
    pub fn new(config: &RedisConfig, errors: StoreErrors) -> Result<Self, redis::RedisError> {
        let client = match &config.ca_pem {
            None => redis::Client::open(config.url.expose().as_str())?,
            Some(pem) => redis::Client::build_with_tls(
                config.url.expose().as_str(),
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
            )?,
        };
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.command_timeout))
            .set_connection_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connections = (0..config.connections)
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            client,
            connections,
            next: AtomicUsize::new(0),
            prefix: config.key_prefix.clone(),
            timeout: config.command_timeout,
            instance: format!("{:016x}", rand::random::<u64>()),
            errors,
            following: AtomicBool::new(false),
        })
    }

    pub fn following(&self) -> bool {
        self.following.load(Ordering::Acquire)
    }

    fn set_following(&self, following: bool) {
        self.following.store(following, Ordering::Release);
    }

    /// `{prefix}{kind}:{id}`.
    pub fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    /// The pub/sub channel of [`events`].
    pub fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs `command` on the next connection, within the command timeout; a failure
    /// is counted under `op`.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        command: &redis::Cmd,
    ) -> Result<T, ClusterError> {
        let mut connection = self.connection();
        self.within(op, command.query_async(&mut connection)).await
    }

    /// Runs `pipeline` (`MULTI`/`EXEC` when built `atomic`) like [`Cluster::run`].
    pub async fn run_pipeline<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        pipeline: &redis::Pipeline,
    ) -> Result<T, ClusterError> {
        let mut connection = self.connection();
        self.within(op, pipeline.query_async(&mut connection)).await
    }

    fn connection(&self) -> ConnectionManager {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[index].clone()
    }

    async fn within<T>(
        &self,
        op: &'static str,
        query: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        let answer = match tokio::time::timeout(self.timeout, query).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => ClusterError::Redis(err),
            Err(_) => ClusterError::Timeout(self.timeout),
        };
        self.errors.count(op);
        Err(answer)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        self.run("get", redis::cmd("GET").arg(key)).await
    }

    /// `SET key value PX ttl`, with `NX`/`XX` from `when`; whether it was set.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration, when: When) -> Result<bool, ClusterError> {
        let answer: Option<String> = self.run("set", &set_command(key, value, ttl, when)).await?;
        Ok(answer.is_some())
    }

    pub async fn del(&self, key: &str) -> Result<(), ClusterError> {
        self.run::<i64>("del", redis::cmd("DEL").arg(key)).await.map(drop)
    }

    /// Tells every replica (see [`events::Event`]).
    pub async fn publish(&self, event: &events::Event) -> Result<(), ClusterError> {
        self.run::<i64>("publish", redis::cmd("PUBLISH").arg(self.channel()).arg(event.encode())).await.map(drop)
    }
}

/// `SET key value PX ttl`, with `NX`/`XX` from `when`: for [`Cluster::set`], and for
/// pipelines that write a key with others.
pub fn set_command(key: &str, value: &[u8], ttl: Duration, when: When) -> redis::Cmd {
    let mut command = redis::cmd("SET");
    command.arg(key).arg(value).arg("PX").arg(ttl.as_millis().max(1) as u64);
    match when {
        When::Always => {}
        When::Absent => {
            command.arg("NX");
        }
        When::Present => {
            command.arg("XX");
        }
    }
    command
}

/// The condition of a [`Cluster::set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// `NX`: only a new key (a lock, a new session).
    Absent,
    /// `XX`: only an existing key (a refreshed session must not come back after its
    /// sign-out deleted it).
    Present,
}
