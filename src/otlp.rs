//! A span per request, exported over OTLP/HTTP (JSON) to an OpenTelemetry collector
//! (`[otlp]`, off by default).
//!
//! The span is the gateway's hop of the request's W3C trace (`trace_context.rs`): its
//! trace id, and the span id the upstream and the provider saw as their parent, with
//! the caller's span as its parent. It carries the method, route, status and whether
//! the session was refreshed. Sampling follows the trace: a trace the gateway starts
//! is sampled, a continued one is exported only when its caller sampled it.
//! The SDK batches spans and exports them from a thread of its own, so a slow or absent
//! collector never holds a request up; spans beyond its queue are dropped.

use crate::config::OtlpConfig;
use crate::trace_context::TraceContext;
use opentelemetry::trace::{
    SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use std::time::{Duration, SystemTime};

/// How long spans wait to be sent in a batch.
const BATCH_DELAY: Duration = Duration::from_millis(500);

pub struct SpanExport {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

thread_local! {
    /// The trace and span ids of the span being built on this thread.
    static NEXT_IDS: std::cell::Cell<Option<(u128, u64)>> = const { std::cell::Cell::new(None) };
}

/// Gives the SDK the request's own ids ([`NEXT_IDS`]), so the exported span is the one
/// the upstream names as its parent; random ones otherwise.
#[derive(Debug)]
struct RequestIds;

impl opentelemetry_sdk::trace::IdGenerator for RequestIds {
    fn new_trace_id(&self) -> TraceId {
        let id = NEXT_IDS.get().map_or_else(|| rand::random::<u128>().max(1), |(trace, _)| trace);
        TraceId::from_bytes(id.to_be_bytes())
    }

    fn new_span_id(&self) -> SpanId {
        let id = NEXT_IDS.get().map_or_else(|| rand::random::<u64>().max(1), |(_, span)| span);
        SpanId::from_bytes(id.to_be_bytes())
    }
}

/// What the span of one request says.
pub struct RequestSpan<'a> {
    pub trace: &'a TraceContext,
    pub method: &'a str,
    /// The route's prefix, or the gateway's own label (`/auth/`, `-`).
    pub route: &'a str,
    pub status: u16,
    pub refreshed: bool,
    pub started: SystemTime,
    pub ended: SystemTime,
}

impl SpanExport {
    pub fn start(config: &OtlpConfig) -> Result<Self, opentelemetry_otlp::ExporterBuildError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(config.endpoint.as_str())
            .with_timeout(Duration::from_secs(5))
            .build()?;
        let batches = BatchConfigBuilder::default().with_scheduled_delay(BATCH_DELAY).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter).with_batch_config(batches).build())
            .with_resource(
                opentelemetry_sdk::Resource::builder().with_service_name(config.service_name.clone()).build(),
            )
            .with_id_generator(RequestIds)
            .build();
        let tracer = provider.tracer("portcullis");
        Ok(Self { provider, tracer })
    }

    /// Records the span of a request that has been answered.
    pub fn record(&self, span: RequestSpan<'_>) {
        let trace = span.trace;
        // The caller's span, as a remote parent: the sampler follows its flag.
        let parent = match trace.parent_id {
            Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from_bytes(trace.trace_id.to_be_bytes()),
                SpanId::from_bytes(parent.to_be_bytes()),
                TraceFlags::new(trace.flags),
                true,
                TraceState::default(),
            )),
            None => Context::new(),
        };
        let attributes = vec![
            KeyValue::new("http.request.method", span.method.to_owned()),
            KeyValue::new("http.route", span.route.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(span.status)),
            KeyValue::new("portcullis.refreshed", span.refreshed),
        ];
        let builder = SpanBuilder::from_name(format!("{} {}", span.method, span.route))
            .with_kind(SpanKind::Server)
            .with_start_time(span.started)
            .with_attributes(attributes);
        // The ids the upstream and the provider saw, handed to the SDK's id generator
        // for this one span (it asks on this thread, while building it).
        NEXT_IDS.set(Some((trace.trace_id, trace.span_id)));
        let mut built = self.tracer.build_with_context(builder, &parent);
        NEXT_IDS.set(None);
        if span.status >= 500 {
            opentelemetry::trace::Span::set_status(&mut built, Status::error(format!("status {}", span.status)));
        }
        opentelemetry::trace::Span::end_with_timestamp(&mut built, span.ended);
    }

    /// Sends what is queued; at shutdown.
    pub fn shutdown(&self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::warn!(error = %err, "could not flush the last spans to the OTLP collector");
        }
    }
}
