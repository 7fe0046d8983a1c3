// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

//! Where an organization may point its alert webhook, through `PUT /auth/alerts/webhook`:
//! nowhere inside the network, however the address is spelled, unless the operator's
//! `outbound.allow_hosts` opens it. On SQLite and on PostgreSQL.

mod common;

use actix_web::http::StatusCode;
use serde_json::json;

use common::on_both_databases;
use common::{Db, TestApp, assert_error, text};

on_both_databases!(
    webhooks_inside_the_network_are_refused_with_the_reason,
    the_allow_list_opens_what_it_names_and_nothing_more,
);

/// Each URL, and why it is refused.
const INSIDE: &[(&str, &str)] = &[
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    (
        "http://169.254.169.254/latest/meta-data",
        "169.254.169.254 is a cloud metadata address",
    ),
    (
        "http://[::ffff:127.0.0.1]/",
        "::ffff:127.0.0.1 is a loopback address",
    ),
    ("http://2130706433/", "127.0.0.1 is a loopback address"),
    ("http://0177.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://0x7f.1/", "127.0.0.1 is a loopback address"),
    ("http://localhost/", "`localhost` names this machine"),
    ("http://LocalHost.:8080/", "`localhost` names this machine"),
    (
        "http://metadata.google.internal/computeMetadata/v1/",
        "`metadata.google.internal` is a cloud metadata service",
    ),
    ("http://metadata/", "is not a fully qualified domain name"),
    ("https://10.0.0.1/", "10.0.0.1 is a private address"),
    ("https://172.16.0.1/", "172.16.0.1 is a private address"),
    ("https://192.168.1.1/", "192.168.1.1 is a private address"),
    (
        "https://100.64.0.1/",
        "100.64.0.1 is a carrier-grade NAT address",
    ),
    ("https://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ("https://[::]/", ":: is an unspecified address"),
    ("https://[::1]/", "::1 is a loopback address"),
    ("https://[fe80::1]/", "fe80::1 is a link-local address"),
    ("https://[fc00::1]/", "fc00::1 is a unique-local address"),
    (
        "https://[fd00:ec2::254]/",
        "fd00:ec2::254 is a cloud metadata address",
    ),
    (
        "https://[64:ff9b::a9fe:a9fe]/",
        "64:ff9b::a9fe:a9fe is a cloud metadata address",
    ),
    (
        "https://[2002:7f00:1::]/",
        "2002:7f00:1:: is a loopback address",
    ),
    ("https://224.0.0.1/", "224.0.0.1 is a multicast address"),
    (
        "https://255.255.255.255/",
        "255.255.255.255 is the broadcast address",
    ),
    ("https://192.0.2.1/", "192.0.2.1 is a documentation address"),
    (
        "https://user:pass@hooks.example.com/",
        "a user name or password in the URL is not allowed",
    ),
    ("https://hooks.example.com:25/", "port 25 is not allowed"),
    (
        "gopher://hooks.example.com/",
        "the scheme `gopher` is not allowed",
    ),
    ("file:///etc/passwd", "the scheme `file` is not allowed"),
];

async fn webhooks_inside_the_network_are_refused_with_the_reason(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("inside@example.com", "Inside Inc").await;
    for (url, reason) in INSIDE {
        let got = app
            .put("/auth/alerts/webhook", &owner.access, json!({"url": url}))
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
        assert_eq!(got.1["error"]["param"], "url", "{url}");
        let message = text(&got.1["error"]["message"]);
        assert!(
            message.starts_with("`url` must be a public http(s) URL: ") && message.contains(reason),
            "{url}: {message}"
        );
    }
    assert_eq!(
        app.get("/auth/alerts/webhook", &owner.access).await.1,
        json!({"url": null}),
        "nothing refused was stored"
    );
}

async fn the_allow_list_opens_what_it_names_and_nothing_more(db: Db) {
    let app = TestApp::start_with(db, |config| {
        config.outbound.allow_hosts = vec![
            "127.0.0.1:9000".parse().unwrap(),
            "hooks.internal.example".parse().unwrap(),
        ];
    })
    .await;
    let owner = app.signup("private@example.com", "Private Inc").await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://hooks.internal.example/hook",
    ] {
        let (status, body) = app
            .put("/auth/alerts/webhook", &owner.access, json!({"url": url}))
            .await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        assert_eq!(body["url"], url);
    }
    for (url, reason) in [
        (
            "http://127.0.0.1:9001/hook",
            "127.0.0.1 is a loopback address",
        ),
        ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
        (
            "http://169.254.169.254/",
            "169.254.169.254 is a cloud metadata address",
        ),
    ] {
        let got = app
            .put("/auth/alerts/webhook", &owner.access, json!({"url": url}))
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
        assert!(
            text(&got.1["error"]["message"]).contains(reason),
            "{url}: {}",
            got.1
        );
    }
}
