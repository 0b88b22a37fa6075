//! RFC 6750 §2.3 and §5.3 behind axum's router: a token taken from the query
//! leaves every copy of the URI the application can read, `OriginalUri`
//! included (the router stores it before route layers run).

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::OriginalUri;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokengate::testing::TestIssuer;
use tower::ServiceExt;

#[tokio::test]
async fn original_uri_loses_the_query_token_too() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = common::builder(&issuer)
        .allow_query_token(true)
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/items",
            get(
                |OriginalUri(original): OriginalUri, uri: http::Uri| async move {
                    format!("{original} {uri}")
                },
            ),
        )
        .layer(gate.layer());
    let token = issuer.token().sign();
    let request = Request::get(format!("/items?page=2&access_token={token}&sort=name"))
        .body(Body::empty())
        .unwrap();
    let answer = app.oneshot(request).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let seen = answer.into_body().collect().await.unwrap().to_bytes();
    let seen = std::str::from_utf8(&seen).unwrap();
    assert!(!seen.contains(&token), "the handler saw the token: {seen}");
    assert_eq!(seen, "/items?page=2&sort=name /items?page=2&sort=name");
}
