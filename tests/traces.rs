//! The `tokengate.authenticate` span (`tokengate::observe`): one per request
//! through the layer, with the documented fields and values, on the fast
//! path and after I/O, and nothing secret in any of them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use tokengate::testing::{Endpoint, Fault, TestIssuer};
use tokengate::{Algorithm, TokenGate};
use tower::{Layer, ServiceExt, service_fn};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

type Fields = BTreeMap<String, String>;

/// Every `tokengate.*` span opened, with its parent and its fields as last
/// recorded, in order of creation.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Captured {
    id: u64,
    name: &'static str,
    parent: Option<u64>,
    fields: Fields,
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let name = attrs.metadata().name();
        if !name.starts_with("tokengate.") {
            return;
        }
        assert_eq!(attrs.metadata().target(), "tokengate");
        let parent = match attrs.parent() {
            Some(parent) => Some(parent.into_u64()),
            None if attrs.is_contextual() => ctx.current_span().id().map(Id::into_u64),
            None => None,
        };
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(Captured {
            id: id.into_u64(),
            name,
            parent,
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some(span) = spans.iter_mut().rev().find(|s| s.id == id.into_u64()) {
            values.record(&mut Visitor(&mut span.fields));
        }
    }
}

/// An upstream call's fields, and whether it ran inside the request span
/// captured just before it.
#[derive(Debug, PartialEq)]
struct UpstreamCall {
    in_request: bool,
    fields: Fields,
}

impl Capture {
    /// The `tokengate.authenticate` spans since the last take.
    fn take(&self) -> Vec<Fields> {
        self.take_all().0
    }

    /// The `tokengate.authenticate` and `tokengate.upstream` spans since the
    /// last take.
    fn take_all(&self) -> (Vec<Fields>, Vec<UpstreamCall>) {
        let spans: Vec<Captured> = self.0.lock().unwrap().drain(..).collect();
        let mut requests = Vec::new();
        let mut upstream = Vec::new();
        for span in &spans {
            match span.name {
                "tokengate.authenticate" => requests.push(span.fields.clone()),
                "tokengate.upstream" => upstream.push(UpstreamCall {
                    in_request: span.parent.is_some_and(|p| {
                        spans
                            .iter()
                            .any(|s| s.id == p && s.name == "tokengate.authenticate")
                    }),
                    fields: span.fields.clone(),
                }),
                other => panic!("an undocumented span {other}"),
            }
        }
        (requests, upstream)
    }
}

fn upstream(in_request: bool, pairs: &[(&str, &str)]) -> UpstreamCall {
    UpstreamCall {
        in_request,
        fields: fields(pairs),
    }
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn status(layer: &tokengate::TokenGateLayer, token: Option<&str>) -> StatusCode {
    let svc = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let mut req = Request::get("/items");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    svc.oneshot(req.body(()).unwrap()).await.unwrap().status()
}

#[tokio::test]
async fn each_request_has_one_span_with_the_documented_fields() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let issuer = TestIssuer::start().await.unwrap();
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .build()
        .await
        .unwrap();
    // Startup fetches run in root spans of their own.
    let ok = |endpoint| {
        upstream(
            false,
            &[("endpoint", endpoint), ("result", "ok"), ("status", "200")],
        )
    };
    assert_eq!(
        capture.take_all(),
        (vec![], vec![ok("discovery"), ok("jwks")])
    );
    let layer = gate.layer();
    let iss = issuer.issuer();
    const SUBJECT: &str = "alice-the-subject";
    let token = issuer.token().claim("sub", SUBJECT).sign();

    // First seen, then answered by the verified-token cache.
    assert_eq!(status(&layer, Some(&token)).await, StatusCode::OK);
    assert_eq!(status(&layer, Some(&token)).await, StatusCode::OK);
    let accepted = [
        ("outcome", "accepted"),
        ("source", "jwt"),
        ("issuer", iss.as_str()),
    ];
    let mut cached = accepted.to_vec();
    cached.push(("cached", "true"));
    assert_eq!(capture.take(), [fields(&accepted), fields(&cached)]);

    // Refusals name their fixed reason, and no issuer.
    let expired = issuer.token().expires_in(-3600).sign();
    assert_eq!(
        status(&layer, Some(&expired)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&layer, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(&layer, Some("not-a-jwt")).await,
        StatusCode::UNAUTHORIZED
    );
    let rejected = |reason| {
        fields(&[
            ("outcome", "rejected"),
            ("reason", reason),
            ("source", "none"),
        ])
    };
    assert_eq!(
        capture.take(),
        [
            rejected("expired"),
            rejected("missing"),
            rejected("not_a_jwt")
        ]
    );

    // No token on an optional layer.
    assert_eq!(status(&gate.optional_layer(), None).await, StatusCode::OK);
    assert_eq!(
        capture.take(),
        [fields(&[("outcome", "anonymous"), ("source", "none")])]
    );

    // After I/O: a new key, fetched for an unknown kid, inside the span.
    let kid = issuer.add_key(Algorithm::ES256);
    let rotated = issuer.token().key(&kid).claim("sub", SUBJECT).sign();
    assert_eq!(status(&layer, Some(&rotated)).await, StatusCode::OK);
    assert_eq!(
        capture.take_all(),
        (
            vec![fields(&accepted)],
            vec![upstream(
                true,
                &[("endpoint", "jwks"), ("result", "ok"), ("status", "200")]
            )]
        )
    );

    // Nothing secret in any field of any span: tokens and subjects never.
    for token in [&token, &expired, &rotated] {
        status(&layer, Some(token)).await;
    }
    for span in capture.take() {
        for value in span.values() {
            for secret in [token.as_str(), expired.as_str(), rotated.as_str(), SUBJECT] {
                assert!(!value.contains(secret), "{span:?}");
            }
        }
    }
}

#[tokio::test]
async fn an_outage_is_unavailable_with_its_reason() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let issuer = TestIssuer::start().await.unwrap();
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .introspection_credentials(
            tokengate::testing::INTROSPECTION_CLIENT_ID,
            tokengate::testing::INTROSPECTION_CLIENT_SECRET,
        )
        .build()
        .await
        .unwrap();
    capture.take();
    // The authorization server is down: the answer cannot be had, a 503,
    // not the token's fault.
    issuer.set_fault(Endpoint::Introspection, Some(Fault::Down));
    let opaque = issuer.token().opaque();
    assert_eq!(
        status(&gate.layer(), Some(&opaque)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (requests, calls) = capture.take_all();
    assert_eq!(
        requests,
        [fields(&[
            ("outcome", "unavailable"),
            ("reason", "introspection_unavailable"),
            ("source", "none"),
        ])]
    );
    assert_eq!(
        calls,
        [upstream(
            true,
            &[("endpoint", "introspection"), ("result", "transport")]
        )]
    );

    // An answer with a status the client does not expect says which.
    issuer.set_fault(Endpoint::Introspection, Some(Fault::Status(500)));
    let opaque = issuer.token().opaque();
    assert_eq!(
        status(&gate.layer(), Some(&opaque)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        capture.take_all().1,
        [upstream(
            true,
            &[
                ("endpoint", "introspection"),
                ("result", "status"),
                ("status", "500")
            ]
        )]
    );
}
