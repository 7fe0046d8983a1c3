// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

//! Guardrail policies through `/auth/guardrails`, `/auth/teams/{team}/guardrails` and
//! `/auth/keys/{key}/guardrails`: set and read at each level, validated naming the field, kept
//! to their organization and to the roles that may change them, and carried to the gateway in
//! each key's context. On SQLite and on PostgreSQL.

mod common;

use actix_web::http::StatusCode;
use serde_json::{Value, json};
use tollgate_auth::{KeyRejection, Role};
use tollgate_common::guardrails::{GuardrailPolicy, NamedPolicy};
use tollgate_common::{OrgId, UserId};

use common::on_both_databases;
use common::{Db, Tenant, TestApp, assert_error, text};

on_both_databases!(
    policies_are_set_at_each_level_and_reach_the_key,
    bad_policies_are_refused_naming_the_field,
    webhooks_inside_the_network_are_refused_unless_opened,
    lesser_roles_and_other_organizations_cannot_change_them,
    a_stored_policy_this_version_cannot_read_fails_closed_until_replaced,
);

/// Adds a user to `owner`'s organization with `role`, and logs them into it.
async fn join(app: &TestApp, owner: &Tenant, email: &str, role: Role) -> String {
    let user = app.signup(email, &format!("home of {email}")).await;
    app.store()
        .add_member(
            owner.org_id.parse::<OrgId>().unwrap(),
            user.user_id.parse::<UserId>().unwrap(),
            role,
            "test",
        )
        .await
        .unwrap();
    app.access_token(email, Some(&owner.org_id)).await
}

fn paths(owner: &Tenant) -> [String; 3] {
    [
        "/auth/guardrails".into(),
        format!("/auth/teams/{}/guardrails", owner.team_id),
        format!("/auth/keys/{}/guardrails", owner.key_id),
    ]
}

fn policy(value: Value) -> GuardrailPolicy {
    serde_json::from_value(value).unwrap()
}

/// The levels a key's context carries, by name.
async fn levels(app: &TestApp, key: &str) -> Vec<NamedPolicy> {
    app.verify(key).await.unwrap().guardrails.levels.clone()
}

async fn policies_are_set_at_each_level_and_reach_the_key(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("gr-owner@example.com", "Guarded Inc").await;
    let [org, team, key] = paths(&owner);

    // nothing set anywhere
    for path in [&org, &team, &key] {
        let (status, body) = app.get(path, &owner.access).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, json!({}));
    }
    assert!(levels(&app, &owner.key).await.is_empty());

    // each level sets its own; the key's context carries the three, widest first, and learns
    // of each change at once (the cached context is pushed out)
    let set = [
        (
            &org,
            json!({"input": {"pii": {"email": "redact", "credit_card": "block"}}}),
        ),
        (
            &team,
            json!({"input": {"pii": {"email": "allow"}, "deny_keywords": ["project falcon"]}}),
        ),
        (
            &key,
            json!({"input": {"deny_regex": ["(?i)internal use only"]}, "restore_in_answer": true}),
        ),
    ];
    for (path, body) in &set {
        let (status, got) = app.put(path, &owner.access, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {got}");
        assert_eq!(&got, body);
        assert_eq!(&app.get(path, &owner.access).await.1, body);
    }
    let got = levels(&app, &owner.key).await;
    let names: Vec<&str> = got.iter().map(|level| level.name.as_str()).collect();
    assert_eq!(names, ["organization", "team", "key"]);
    for (level, (_, body)) in got.iter().zip(&set) {
        assert_eq!(level.policy, policy(body.clone()), "{}", level.name);
    }

    // a change reaches a key whose context is already cached
    let changed = json!({"output": {"max_chars": 2000}});
    let (status, _) = app.put(&team, &owner.access, changed.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(levels(&app, &owner.key).await[1].policy, policy(changed));

    // another key of the team inherits the organization's and the team's only
    let (status, body) = app
        .post("/auth/keys", &owner.access, json!({"name": "sibling"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let names: Vec<String> = levels(&app, &text(&body["key"]))
        .await
        .into_iter()
        .map(|level| level.name)
        .collect();
    assert_eq!(names, ["organization", "team"]);

    // an empty policy removes the level's
    let (status, _) = app.put(&key, &owner.access, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(levels(&app, &owner.key).await.len(), 2);

    // every change is audited, before and after
    let (_, audit) = app.get("/auth/audit", &owner.access).await;
    let entries: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "guardrails.set")
        .collect();
    assert_eq!(entries.len(), 5, "{audit}");
    assert_eq!(entries[0]["target_type"], "key");
    assert_eq!(entries[0]["before"], set[2].1);
    assert_eq!(entries[0]["after"], json!({}));
}

async fn bad_policies_are_refused_naming_the_field(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("gr-bad@example.com", "Strict Inc").await;
    let oversized = json!({"input": {"deny_keywords": vec!["x".repeat(400); 100]}});
    for path in paths(&owner) {
        for (body, param) in [
            (
                json!({"input": {"deny_regex": ["fine", "(unclosed"]}}),
                "input.deny_regex[1]",
            ),
            (
                json!({"output": {"deny_regex": ["a{1000}{1000}"]}}),
                "output.deny_regex[0]",
            ),
            (
                json!({"input": {"topic_threshold": 2}}),
                "input.topic_threshold",
            ),
            (
                json!({"webhook": {"url": "ftp://hooks.example.com/"}}),
                "webhook.url",
            ),
            (
                json!({"webhook": {"url": "https://hooks.example.com/", "timeout_ms": 60000}}),
                "webhook.timeout_ms",
            ),
            (oversized.clone(), "policy"),
        ] {
            let got = app.put(&path, &owner.access, body.clone()).await;
            assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
            assert_eq!(got.1["error"]["param"], param, "{path}: {}", got.1);
        }
        // documents that are not policies at all: an unknown entity type or field
        for (body, mentions) in [
            (
                json!({"input": {"pii": {"passport": "redact"}}}),
                "passport",
            ),
            (json!({"input": {"pii": {"email": "shred"}}}), "shred"),
            (json!({"inputs": {}}), "inputs"),
        ] {
            let got = app.put(&path, &owner.access, body.clone()).await;
            assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
            let message = text(&got.1["error"]["message"]);
            assert!(message.contains(mentions), "{body}: {message}");
        }
        assert_eq!(app.get(&path, &owner.access).await.1, json!({}));
    }
}

async fn webhooks_inside_the_network_are_refused_unless_opened(db: Db) {
    let app = TestApp::start_with(db, |config| {
        config.outbound.allow_hosts = vec!["127.0.0.1:9000".parse().unwrap()];
    })
    .await;
    let owner = app.signup("gr-hook@example.com", "Hooked Inc").await;
    let webhook = |url: &str| json!({"webhook": {"url": url, "on_failure": "open"}});
    for (url, reason) in [
        ("http://127.0.0.1/check", "127.0.0.1 is a loopback address"),
        (
            "http://169.254.169.254/latest/meta-data",
            "169.254.169.254 is a cloud metadata address",
        ),
        ("https://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://localhost:9000/", "`localhost` names this machine"),
    ] {
        let got = app
            .put("/auth/guardrails", &owner.access, webhook(url))
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
        assert_eq!(got.1["error"]["param"], "webhook.url");
        let message = text(&got.1["error"]["message"]);
        assert!(
            message.starts_with("`webhook.url` must be a public http(s) URL: ")
                && message.contains(reason),
            "{url}: {message}"
        );
    }
    assert_eq!(
        app.get("/auth/guardrails", &owner.access).await.1,
        json!({})
    );
    // the operator's allow-list opens what it names
    let (status, body) = app
        .put(
            "/auth/guardrails",
            &owner.access,
            webhook("http://127.0.0.1:9000/check"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["webhook"]["url"], "http://127.0.0.1:9000/check");
}

async fn lesser_roles_and_other_organizations_cannot_change_them(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("gr-roles@example.com", "Roles Inc").await;
    let other = app.signup("gr-other@example.com", "Elsewhere").await;
    let [org, team, key] = paths(&owner);
    let body = json!({"input": {"deny_keywords": ["secret plan"]}});
    for path in [&org, &team, &key] {
        let (status, _) = app.put(path, &owner.access, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    // members and viewers read every level; a member who is not the team's admin changes
    // neither the organization's nor the team's policy, nor a key that is not theirs
    let member = join(&app, &owner, "gr-member@example.com", Role::Member).await;
    let viewer = join(&app, &owner, "gr-viewer@example.com", Role::Viewer).await;
    for token in [&member, &viewer] {
        for path in [&org, &team, &key] {
            assert_eq!(app.get(path, token).await.1, body, "{path}");
            let got = app.put(path, token, json!({})).await;
            assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
        }
    }

    // another organization can neither read nor change my team's or key's policy, and its
    // own organization policy is its own
    for path in [&team, &key] {
        let got = app.get(path, &other.access).await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
        let got = app.put(path, &other.access, json!({})).await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
    }
    assert_eq!(app.get(&org, &other.access).await.1, json!({}));
    let (status, _) = app
        .put(&org, &other.access, json!({"restore_in_answer": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    for path in [&org, &team, &key] {
        assert_eq!(app.get(path, &owner.access).await.1, body, "{path}");
    }
    assert_eq!(levels(&app, &owner.key).await.len(), 3);
    let theirs = levels(&app, &other.key).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].policy.restore_in_answer, Some(true));
}

async fn a_stored_policy_this_version_cannot_read_fails_closed_until_replaced(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("gr-future@example.com", "Future Inc").await;
    let [_, _, key] = paths(&owner);
    // as a newer version (or a hand edit) might leave it, before the key is first used
    sqlx::query("UPDATE virtual_keys SET guardrail_policy = $1 WHERE id = $2")
        .bind(r#"{"input": {"pii": {"passport": "redact"}}}"#)
        .bind(owner.key_id.clone())
        .execute(app.store().pool())
        .await
        .unwrap();

    // the key is not let through with its guardrails unknown, and the error names the column
    match app.verify(&owner.key).await {
        Err(KeyRejection::Unavailable(detail)) => {
            assert!(detail.contains("guardrail_policy"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    let got = app.get(&key, &owner.access).await;
    assert_eq!(got.0, StatusCode::INTERNAL_SERVER_ERROR, "{}", got.1);

    // setting the level's policy again repairs it; the audit keeps what was replaced
    let (status, body) = app
        .put(
            &key,
            &owner.access,
            json!({"input": {"pii": {"ssn": "block"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(levels(&app, &owner.key).await.len(), 1);
    let (_, audit) = app.get("/auth/audit", &owner.access).await;
    assert_eq!(
        audit["data"][0]["before"],
        json!({"input": {"pii": {"passport": "redact"}}})
    );
}
