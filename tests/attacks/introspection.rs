//! RFC 7662 introspection: a misbehaving authorization server is a 503 with
//! `Retry-After`, never a 200 and never a cached failure.

use std::time::Duration;

use tokengate::testing::{Endpoint, Fault};

use crate::target::*;

/// With `fault` on the introspection endpoint an opaque token gets 503,
/// while JWTs are still served; healed, the same token gets 200.
async fn introspection_fault(label: &str, fault: Fault) {
    let t = Target::introspecting().await;
    let token = t.issuer.token().scope("items:read").opaque();
    t.issuer.set_fault(Endpoint::Introspection, Some(fault));
    // `check` also asserts that JWTs, which need no introspection, are
    // still served.
    t.check(label, &token, Expect::Unavailable).await;
    // The failure was not cached.
    t.issuer.set_fault(Endpoint::Introspection, None);
    t.check(&format!("{label}, healed"), &token, Expect::Served)
        .await;
}

/// One named test per fault: `name: label => fault;`.
macro_rules! introspection_faults {
    ($($name:ident: $label:literal => $fault:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            introspection_fault($label, $fault).await;
        }
    )*};
}

introspection_faults! {
    introspection_answering_active_as_a_string_is_503: "introspection: {\"active\": \"true\"}"
        => Fault::Body(r#"{"active":"true","scope":"admin","client_id":"c"}"#.into());
    introspection_answer_without_active_is_503: "introspection: active omitted"
        => Fault::Body(r#"{"scope":"admin","client_id":"c","token_type":"Bearer"}"#.into());
    introspection_answering_html_is_503: "introspection: HTML page"
        => Fault::Html;
    introspection_answer_too_large_is_503: "introspection: 2 MiB body with Content-Length"
        => Fault::Oversize(2 * 1024 * 1024);
    introspection_answer_too_large_and_chunked_is_503: "introspection: 2 MiB chunked body"
        => Fault::OversizeChunked(2 * 1024 * 1024);
    introspection_answer_deeply_nested_is_503: "introspection: 10 000 levels of ["
        => Fault::Body(format!(r#"{{"active":true,"x":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000)));
}

#[tokio::test]
async fn introspection_stalling_past_the_timeout_is_503() {
    let started = std::time::Instant::now();
    introspection_fault(
        "introspection: stalls 3 s, timeout 300 ms",
        Fault::Slow(Duration::from_secs(3)),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the gate gave up at its own timeout"
    );
}
