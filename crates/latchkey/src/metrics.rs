//! Prometheus metrics (SPEC 5): requests and latencies per route, tokens issued per grant, sign-ins and failures.
//! The registry lives in application state, not in a global.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub tokens_issued: Family<GrantLabels, Counter>,
    pub signins: Family<OutcomeLabels, Counter>,
    pub token_failures: Family<OutcomeLabels, Counter>,
    /// Mail delivery attempts by outcome: `sent`, `retry` (failed, tried again later), `failed` (given up).
    pub mails: Family<OutcomeLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("latchkey");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        let signins = Family::<OutcomeLabels, Counter>::default();
        let token_failures = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "tokens_issued",
            "Access tokens issued by grant type",
            tokens_issued.clone(),
        );
        registry.register("signins", "Sign-in attempts by outcome", signins.clone());
        registry.register(
            "token_errors",
            "Token endpoint errors by error code",
            token_failures.clone(),
        );
        let mails = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "mails",
            "Mail delivery attempts by outcome (sent, retry, failed)",
            mails.clone(),
        );
        Metrics {
            registry,
            mails,
            requests,
            latency,
            tokens_issued,
            signins,
            token_failures,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
