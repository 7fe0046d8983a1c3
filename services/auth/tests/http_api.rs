// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

//! The auth service's REST API under `/auth`, end to end through actix, on SQLite and on
//! PostgreSQL: sessions, keys, tenant isolation, roles, hostile input and login throttling.

mod common;

use std::time::Duration;

use actix_web::http::header::{CONTENT_LENGTH, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tollgate_auth::{KeyRejection, Role};
use tollgate_common::config::LoginThrottleConfig;
use tollgate_common::{OrgId, UserId};

use common::on_both_databases;
use common::{
    Db, PASSWORD, SIGNING_KID, SIGNING_SECRET, Tenant, TestApp, assert_error, ids, peer, request,
    sorted, text,
};

on_both_databases!(
    budgets_are_set_per_scope_reach_the_key_and_stay_in_their_organization,
    alert_webhooks_are_admin_only_and_show_their_secret_once,
    rate_limits_are_set_on_teams_and_organizations_and_reach_the_key,
    limits_above_the_deployments_ceilings_are_refused,
    signups_are_limited_per_client_made_accounts_included,
    cache_policies_merge_from_key_to_organization_and_stay_in_their_organization,
    signup_and_login_open_a_session_and_a_working_key,
    emails_are_unique_whatever_their_case,
    refresh_rotates_and_a_replayed_token_ends_the_session,
    logout_ends_the_session,
    keys_are_created_listed_updated_rotated_and_revoked,
    teams_and_team_members_are_managed,
    another_organization_reaches_none_of_my_data,
    login_into_an_organization_one_is_not_in_is_refused,
    the_last_owner_cannot_be_demoted_or_removed,
    viewers_read_but_change_nothing,
    members_manage_only_their_own_keys_in_their_own_teams,
    admins_manage_every_key_and_every_role_below_owner,
    audit_log_is_admin_only_and_records_key_changes,
    malformed_bodies_are_refused_with_openai_errors,
    oversized_bodies_are_refused_with_413,
    over_long_and_hostile_strings_are_refused_or_stored_literally,
    password_policy_names_the_broken_rule,
    key_settings_are_validated,
    bad_paths_and_methods_are_404_and_405,
    broken_or_forged_access_tokens_are_refused,
    failed_logins_are_throttled_per_email_and_client,
    failed_logins_are_throttled_per_client_ip,
    wrong_password_and_unknown_email_answer_alike,
);

const TOKEN_INVALID: &str = "The access token is not valid.";
const BAD_CREDENTIALS: &str = "Incorrect email or password.";

fn now_ms() -> i64 {
    tollgate_auth::store::now_ms()
}

/// Adds a user to `owner`'s organization with `role`, and logs them into it. Sign-up is the
/// only way to create a user, so they also get an organization of their own.
async fn join(app: &TestApp, owner: &Tenant, email: &str, role: Role) -> (String, String) {
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
    let access = app.access_token(email, Some(&owner.org_id)).await;
    (user.user_id, access)
}

/// Creates a key as `token`'s user; the response as is.
async fn create_key(app: &TestApp, token: &str, spec: Value) -> (StatusCode, Value) {
    app.post("/auth/keys", token, spec).await
}

/// Creates a key that must succeed; returns `(id, secret)`.
async fn new_key(app: &TestApp, token: &str, spec: Value) -> (String, String) {
    let (status, body) = create_key(app, token, spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (text(&body["id"]), text(&body["key"]))
}

async fn new_team(app: &TestApp, token: &str, name: &str) -> String {
    let (status, body) = app.post("/auth/teams", token, json!({"name": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    text(&body["id"])
}

// ---- happy path ----

async fn signup_and_login_open_a_session_and_a_working_key(db: Db) {
    let app = TestApp::start(db).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/auth/signup",
            None,
            Some(
                json!({"email": "Alice@Example.com", "password": PASSWORD, "organization": "Acme"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = text(&body["api_key"]["key"]);
    assert!(key.starts_with("tg-"), "{key}");
    assert!(key.starts_with(&text(&body["api_key"]["display_prefix"])));
    assert_eq!(body["api_key"]["status"], "active");
    assert_eq!(body["api_key"]["team_id"], body["team"]["id"]);
    assert_eq!(body["api_key"]["created_by"], body["user"]["id"]);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(!text(&body["access_token"]).is_empty());
    assert!(!text(&body["refresh_token"]).is_empty());
    assert_eq!(body["user"]["email"], "Alice@Example.com");
    assert_eq!(body["organization"]["name"], "Acme");
    let raw = body.to_string();
    for secret_field in ["password", "key_hash", "$argon2"] {
        assert!(!raw.contains(secret_field), "{secret_field} leaked: {raw}");
    }
    let org_id = text(&body["organization"]["id"]);
    let user_id = text(&body["user"]["id"]);

    // The key opens the gateway, for this organization.
    let context = app.verify(&key).await.unwrap();
    assert_eq!(context.org_id.unwrap().to_string(), org_id);
    assert_eq!(
        context.key_id.unwrap().to_string(),
        text(&body["api_key"]["id"])
    );

    // Login is case-insensitive on the email and answers with the same token shape.
    let (status, login) = app.login("alice@example.COM", None).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 900);
    assert!(login.get("api_key").is_none(), "{login}");
    let access = text(&login["access_token"]);
    assert_ne!(text(&login["refresh_token"]), text(&body["refresh_token"]));

    let (status, me) = app.get("/auth/me", &access).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["id"], user_id.as_str());
    assert_eq!(me["user"]["email"], "Alice@Example.com");
    assert_eq!(me["organization"]["id"], org_id.as_str());
    assert_eq!(me["role"], "owner");
    assert_eq!(me["organizations"].as_array().unwrap().len(), 1);
    assert_eq!(me["organizations"][0]["role"], "owner");
    assert!(!me.to_string().contains("password"), "{me}");

    // The sign-up's own access token works too.
    let (status, _) = app.get("/auth/me", &text(&body["access_token"])).await;
    assert_eq!(status, StatusCode::OK);
}

async fn emails_are_unique_whatever_their_case(db: Db) {
    let app = TestApp::start(db).await;
    app.signup("carol@example.com", "First").await;
    for variant in [
        "carol@example.com",
        "CAROL@Example.COM",
        "  Carol@example.com ",
    ] {
        let got = app
            .call(
                Method::POST,
                "/auth/signup",
                None,
                Some(json!({"email": variant, "password": PASSWORD, "organization": "Second"})),
            )
            .await;
        assert_error(&got, StatusCode::CONFLICT, "invalid_request_error");
        assert_eq!(got.1["error"]["code"], "conflict");
    }
    // The refused sign-ups left nothing behind.
    let names: Vec<String> = app
        .store()
        .all_organizations()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["First"]);
}

async fn refresh_rotates_and_a_replayed_token_ends_the_session(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("dave@example.com", "Dave's").await;
    // A second, independent session (another login) must survive what happens to the first.
    let other_session = app.access_token(&t.email, None).await;

    let (status, first) = app.refresh(&t.refresh).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 900);
    let refresh_1 = text(&first["refresh_token"]);
    let access_1 = text(&first["access_token"]);
    assert_ne!(refresh_1, t.refresh);
    assert_eq!(app.get("/auth/me", &access_1).await.0, StatusCode::OK);

    // The new refresh token works...
    let (status, second) = app.refresh(&refresh_1).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let refresh_2 = text(&second["refresh_token"]);
    let access_2 = text(&second["access_token"]);

    // ...a spent one does not, and replaying it revokes the whole session.
    let replay = app.refresh(&refresh_1).await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "invalid_request_error");
    assert_eq!(replay.1["error"]["code"], "invalid_refresh_token");
    assert_eq!(app.refresh(&refresh_2).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&t.refresh).await.0, StatusCode::UNAUTHORIZED);
    for access in [&t.access, &access_1, &access_2] {
        let got = app.get("/auth/me", access).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    }
    assert_eq!(app.get("/auth/me", &other_session).await.0, StatusCode::OK);

    // Tokens that were never issued, or are absurd, are simply not valid.
    for bogus in ["", "nope", &"x".repeat(5000)] {
        let got = app.refresh(bogus).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    }
}

async fn logout_ends_the_session(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("erin@example.com", "Erin's").await;
    assert_eq!(app.get("/auth/me", &t.access).await.0, StatusCode::OK);

    let (status, body) = app.logout(&t.refresh).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);

    let got = app.refresh(&t.refresh).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    let got = app.get("/auth/me", &t.access).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    assert_eq!(got.1["error"]["code"], "invalid_token");

    // Logging out twice, or with an unknown token, is not an error.
    assert_eq!(app.logout(&t.refresh).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.logout("never-issued").await.0, StatusCode::NO_CONTENT);
    // Logging out ends the session, not the account.
    let access = app.access_token(&t.email, None).await;
    assert_eq!(app.get("/auth/me", &access).await.0, StatusCode::OK);
    // Nor the keys.
    assert!(app.verifies(&t.key).await);
}

async fn keys_are_created_listed_updated_rotated_and_revoked(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("frank@example.com", "Frank's").await;
    let tomorrow = now_ms() + 24 * 3600 * 1000;

    let (status, created) = create_key(
        &app,
        &t.access,
        json!({
            "name": "ci",
            "allowed_models": ["gpt-4o*"],
            "rpm_limit": 60,
            "tpm_limit": 10000,
            "budget_usd": "25.50",
            "budget_period": "monthly",
            "tags": {"env": "ci"},
            "metadata": {"owner": "build"},
            "expires_at": tomorrow,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = text(&created["id"]);
    let secret = text(&created["key"]);
    assert!(secret.starts_with("tg-"));
    assert_eq!(created["name"], "ci");
    assert_eq!(created["team_id"], t.team_id.as_str());
    assert_eq!(created["created_by"], t.user_id.as_str());
    assert_eq!(created["budget_usd"], "25.50");
    assert_eq!(created["budget_period"], "monthly");
    assert_eq!(created["expires_at"], tomorrow);
    assert_eq!(created["status"], "active");
    let context = app.verify(&secret).await.unwrap();
    assert_eq!(context.key_id.unwrap().to_string(), id);
    assert_eq!(context.rpm_limit, Some(60));

    // Listed and readable, never with the secret again.
    let (status, list) = app.get("/auth/keys", &t.access).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list, "id"), sorted([&id, &t.key_id]));
    assert!(!list.to_string().contains(&secret[3..]), "{list}");
    let (_, by_team) = app
        .get(&format!("/auth/keys?team_id={}", t.team_id), &t.access)
        .await;
    assert_eq!(ids(&by_team, "id"), sorted([&id, &t.key_id]));
    let (status, got) = app.get(&format!("/auth/keys/{id}"), &t.access).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert!(got.get("key").is_none(), "{got}");
    assert_eq!(got["tags"], json!({"env": "ci"}));
    assert_eq!(got["metadata"], json!({"owner": "build"}));

    // A partial update; `null` clears.
    let (status, updated) = app
        .patch(
            &format!("/auth/keys/{id}"),
            &t.access,
            json!({"name": "ci-2", "rpm_limit": null, "budget_usd": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "ci-2");
    assert_eq!(updated["rpm_limit"], Value::Null);
    assert_eq!(updated["budget_usd"], "10");
    assert_eq!(updated["tpm_limit"], 10000);
    assert_eq!(app.verify(&secret).await.unwrap().rpm_limit, None);

    // Disabling stops the key at once; enabling brings it back.
    let (_, disabled) = app
        .patch(
            &format!("/auth/keys/{id}"),
            &t.access,
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled["status"], "disabled");
    assert_eq!(
        app.verify(&secret).await.unwrap_err(),
        KeyRejection::Disabled
    );
    let (_, enabled) = app
        .patch(
            &format!("/auth/keys/{id}"),
            &t.access,
            json!({"disabled": false}),
        )
        .await;
    assert_eq!(enabled["status"], "active");
    assert!(app.verifies(&secret).await);

    // Rotation: a new secret with the same settings; the old one works for the grace period.
    let (status, rotated) = app
        .post(
            &format!("/auth/keys/{id}/rotate"),
            &t.access,
            json!({"grace_seconds": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_id = text(&rotated["id"]);
    let new_secret = text(&rotated["key"]);
    assert_ne!(new_id, id);
    assert_ne!(new_secret, secret);
    assert_eq!(rotated["name"], "ci-2");
    assert_eq!(rotated["tpm_limit"], 10000);
    assert_eq!(rotated["status"], "active");
    let (_, old) = app.get(&format!("/auth/keys/{id}"), &t.access).await;
    assert_eq!(old["status"], "rotating");
    assert_eq!(old["rotated_to"], new_id.as_str());
    assert!(app.verifies(&secret).await);
    assert!(app.verifies(&new_secret).await);
    let again = app
        .post(&format!("/auth/keys/{id}/rotate"), &t.access, json!({}))
        .await;
    assert_error(&again, StatusCode::CONFLICT, "invalid_request_error");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.verify(&secret).await.unwrap_err(),
        KeyRejection::Expired
    );
    assert!(app.verifies(&new_secret).await);
    let (_, old) = app.get(&format!("/auth/keys/{id}"), &t.access).await;
    assert_eq!(old["status"], "expired");

    // Revocation stops a key at once, though it was verified (and cached) a moment ago.
    let (status, revoked) = app
        .call(
            Method::POST,
            &format!("/auth/keys/{new_id}/revoke"),
            Some(&t.access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(
        app.verify(&new_secret).await.unwrap_err(),
        KeyRejection::Revoked
    );
    let rotate_revoked = app
        .post(&format!("/auth/keys/{new_id}/rotate"), &t.access, json!({}))
        .await;
    assert_error(
        &rotate_revoked,
        StatusCode::CONFLICT,
        "invalid_request_error",
    );
    // Revoking twice keeps the first time.
    let (_, twice) = app.delete(&format!("/auth/keys/{new_id}"), &t.access).await;
    assert_eq!(twice["revoked_at"], revoked["revoked_at"]);

    // DELETE revokes too; a rotation with no body uses the default grace (a day).
    assert!(app.verifies(&t.key).await);
    let (status, rotated) = app
        .call(
            Method::POST,
            &format!("/auth/keys/{}/rotate", t.key_id),
            Some(&t.access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(app.verifies(&t.key).await);
    let (status, _) = app
        .delete(&format!("/auth/keys/{}", t.key_id), &t.access)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.verify(&t.key).await.unwrap_err(), KeyRejection::Revoked);
    assert!(app.verifies(&text(&rotated["key"])).await);

    // A zero grace period stops the old key at once.
    let (zero_id, zero_secret) = new_key(&app, &t.access, json!({"name": "zero"})).await;
    assert!(app.verifies(&zero_secret).await);
    let (status, _) = app
        .post(
            &format!("/auth/keys/{zero_id}/rotate"),
            &t.access,
            json!({"grace_seconds": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!app.verifies(&zero_secret).await);
}

async fn teams_and_team_members_are_managed(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("gwen@example.com", "Gwen's").await;
    let (member_id, _) = join(&app, &t, "hank@example.com", Role::Member).await;

    let ops = new_team(&app, &t.access, "ops").await;
    let dup = app
        .post("/auth/teams", &t.access, json!({"name": "ops"}))
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "invalid_request_error");
    let (_, teams) = app.get("/auth/teams", &t.access).await;
    assert_eq!(ids(&teams, "id"), sorted([&t.team_id, &ops]));

    let (status, renamed) = app
        .patch(
            &format!("/auth/teams/{ops}"),
            &t.access,
            json!({"name": "operations"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    let (_, got) = app.get(&format!("/auth/teams/{ops}"), &t.access).await;
    assert_eq!(got["name"], "operations");
    let clash = app
        .patch(
            &format!("/auth/teams/{ops}"),
            &t.access,
            json!({"name": "default"}),
        )
        .await;
    assert_error(&clash, StatusCode::CONFLICT, "invalid_request_error");

    let (status, put) = app
        .put(
            &format!("/auth/teams/{ops}/members/{member_id}"),
            &t.access,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["role"], "member");
    let (_, members) = app
        .get(&format!("/auth/teams/{ops}/members"), &t.access)
        .await;
    assert_eq!(ids(&members, "user_id"), sorted([&member_id]));
    assert_eq!(members["data"][0]["role"], "member");
    let owner_role = app
        .put(
            &format!("/auth/teams/{ops}/members/{member_id}"),
            &t.access,
            json!({"role": "owner"}),
        )
        .await;
    assert_error(
        &owner_role,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
    );
    let (status, _) = app
        .delete(&format!("/auth/teams/{ops}/members/{member_id}"), &t.access)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, members) = app
        .get(&format!("/auth/teams/{ops}/members"), &t.access)
        .await;
    assert!(ids(&members, "user_id").is_empty());
    let again = app
        .delete(&format!("/auth/teams/{ops}/members/{member_id}"), &t.access)
        .await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found_error");

    // A team with keys cannot be deleted; an empty one can.
    let busy = app
        .delete(&format!("/auth/teams/{}", t.team_id), &t.access)
        .await;
    assert_error(&busy, StatusCode::CONFLICT, "invalid_request_error");
    let (status, _) = app.delete(&format!("/auth/teams/{ops}"), &t.access).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = app.get(&format!("/auth/teams/{ops}"), &t.access).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found_error");
}

// ---- isolation between organizations ----

async fn another_organization_reaches_none_of_my_data(db: Db) {
    let app = TestApp::start(db).await;
    let a = app.signup("alice@a.example", "A").await;
    let b = app.signup("bob@b.example", "B").await;
    let a_research = new_team(&app, &a.access, "research").await;
    let a_empty = new_team(&app, &a.access, "empty").await;
    let (a_key2, a_secret2) = new_key(
        &app,
        &a.access,
        json!({"name": "research key", "team_id": a_research}),
    )
    .await;

    let (at, ak, au, bt) = (&a.team_id, &a.key_id, &a.user_id, &b.team_id);
    let bu = &b.user_id;
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/auth/teams/{at}"), None),
        (Method::GET, format!("/auth/teams/{a_research}"), None),
        (
            Method::PATCH,
            format!("/auth/teams/{at}"),
            Some(json!({"name": "pwned"})),
        ),
        (Method::DELETE, format!("/auth/teams/{a_empty}"), None),
        (Method::GET, format!("/auth/teams/{at}/members"), None),
        (
            Method::PUT,
            format!("/auth/teams/{at}/members/{au}"),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::PUT,
            format!("/auth/teams/{at}/members/{bu}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/auth/teams/{at}/members/{au}"),
            None,
        ),
        (
            Method::PUT,
            format!("/auth/teams/{bt}/members/{au}"),
            Some(json!({"role": "member"})),
        ),
        (
            Method::DELETE,
            format!("/auth/teams/{bt}/members/{au}"),
            None,
        ),
        (Method::GET, format!("/auth/members/{au}"), None),
        (
            Method::PATCH,
            format!("/auth/members/{au}"),
            Some(json!({"role": "viewer"})),
        ),
        (Method::DELETE, format!("/auth/members/{au}"), None),
        (Method::GET, format!("/auth/keys/{ak}"), None),
        (Method::GET, format!("/auth/keys/{a_key2}"), None),
        (
            Method::PATCH,
            format!("/auth/keys/{ak}"),
            Some(json!({"name": "pwned", "disabled": true})),
        ),
        (Method::DELETE, format!("/auth/keys/{ak}"), None),
        (
            Method::POST,
            format!("/auth/keys/{ak}/rotate"),
            Some(json!({"grace_seconds": 0})),
        ),
        (Method::POST, format!("/auth/keys/{a_key2}/rotate"), None),
        (Method::POST, format!("/auth/keys/{ak}/revoke"), None),
        (Method::POST, format!("/auth/keys/{a_key2}/revoke"), None),
        (
            Method::POST,
            "/auth/keys".into(),
            Some(json!({"name": "planted", "team_id": at})),
        ),
        (
            Method::POST,
            "/auth/keys".into(),
            Some(json!({"name": "planted", "team_id": a_research})),
        ),
        (Method::GET, format!("/auth/keys?team_id={at}"), None),
        (
            Method::GET,
            format!("/auth/keys?team_id={a_research}"),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let got = app.call(method.clone(), &path, Some(&b.access), body).await;
        assert_eq!(got.0, StatusCode::NOT_FOUND, "{method} {path}: {}", got.1);
        assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
    }

    // A's data is as it was.
    assert!(app.verifies(&a.key).await);
    assert!(app.verifies(&a_secret2).await);
    let (_, team) = app.get(&format!("/auth/teams/{at}"), &a.access).await;
    assert_eq!(team["name"], "default");
    let (status, _) = app.get(&format!("/auth/teams/{a_empty}"), &a.access).await;
    assert_eq!(status, StatusCode::OK);
    let (_, owner) = app.get(&format!("/auth/members/{au}"), &a.access).await;
    assert_eq!(owner["role"], "owner");
    let (_, key) = app.get(&format!("/auth/keys/{ak}"), &a.access).await;
    assert_eq!(
        (&key["name"], &key["status"]),
        (&json!("default"), &json!("active"))
    );
    let (_, members) = app
        .get(&format!("/auth/teams/{at}/members"), &a.access)
        .await;
    assert_eq!(ids(&members, "user_id"), sorted([au]));
    assert_eq!(members["data"][0]["role"], "admin");
    let (_, keys) = app.get("/auth/keys", &a.access).await;
    assert_eq!(ids(&keys, "id"), sorted([&a_key2, ak]));
    let (_, members) = app.get("/auth/members", &a.access).await;
    assert_eq!(ids(&members, "user_id"), sorted([au]));
    let (_, audit) = app.get("/auth/audit", &a.access).await;
    assert!(!audit.to_string().contains(bu.as_str()), "{audit}");

    // B's lists show nothing of A's.
    let a_marks = [
        a.org_id.as_str(),
        at,
        a_research.as_str(),
        a_empty.as_str(),
        au,
        ak,
        a_key2.as_str(),
        a.email.as_str(),
    ];
    for path in [
        "/auth/teams",
        "/auth/members",
        "/auth/keys",
        "/auth/audit",
        "/auth/me",
    ] {
        let (status, body) = app.get(path, &b.access).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let raw = body.to_string();
        for mark in a_marks {
            assert!(!raw.contains(mark), "{path} shows A's {mark}: {raw}");
        }
    }
    // And A's key is A's to the gateway.
    let context = app.verify(&a.key).await.unwrap();
    assert_eq!(context.org_id.unwrap().to_string(), a.org_id);
}

async fn login_into_an_organization_one_is_not_in_is_refused(db: Db) {
    let app = TestApp::start(db).await;
    let a = app.signup("ivan@a.example", "A").await;
    let b = app.signup("judy@b.example", "B").await;
    for org in [
        b.org_id.as_str(),
        "not-an-id",
        &OrgId::generate().to_string(),
    ] {
        let got = app.login(&a.email, Some(org)).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
        assert_eq!(got.1["error"]["message"], BAD_CREDENTIALS);
    }
    let access = app.access_token(&a.email, Some(&a.org_id)).await;
    let (_, me) = app.get("/auth/me", &access).await;
    assert_eq!(me["organization"]["id"], a.org_id.as_str());
}

// ---- roles ----

async fn the_last_owner_cannot_be_demoted_or_removed(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("kate@example.com", "Kate's").await;
    let me = format!("/auth/members/{}", owner.user_id);
    let demote = app
        .patch(&me, &owner.access, json!({"role": "admin"}))
        .await;
    assert_error(&demote, StatusCode::CONFLICT, "invalid_request_error");
    let leave = app.delete(&me, &owner.access).await;
    assert_error(&leave, StatusCode::CONFLICT, "invalid_request_error");
    let (_, member) = app.get(&me, &owner.access).await;
    assert_eq!(member["role"], "owner");

    // With a second owner, the first may step down; then the second is the last one.
    let (second_id, second) = join(&app, &owner, "leo@example.com", Role::Admin).await;
    let second_path = format!("/auth/members/{second_id}");
    let (status, promoted) = app
        .patch(&second_path, &owner.access, json!({"role": "owner"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["role"], "owner");
    let (status, stepped_down) = app
        .patch(&me, &owner.access, json!({"role": "admin"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{stepped_down}");
    let last = app
        .patch(&second_path, &second, json!({"role": "member"}))
        .await;
    assert_error(&last, StatusCode::CONFLICT, "invalid_request_error");
    let last = app.delete(&second_path, &second).await;
    assert_error(&last, StatusCode::CONFLICT, "invalid_request_error");
    // An admin cannot touch an owner.
    let got = app
        .patch(&second_path, &owner.access, json!({"role": "admin"}))
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    let got = app.delete(&second_path, &owner.access).await;
    assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    let (_, member) = app.get(&second_path, &second).await;
    assert_eq!(member["role"], "owner");
}

async fn viewers_read_but_change_nothing(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("mia@example.com", "Mia's").await;
    let (viewer_id, viewer) = join(&app, &owner, "ned@example.com", Role::Viewer).await;
    // On the team as a member, so that only the organization role refuses her.
    let (status, _) = app
        .put(
            &format!("/auth/teams/{}/members/{viewer_id}", owner.team_id),
            &owner.access,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (ot, ok, ou) = (&owner.team_id, &owner.key_id, &owner.user_id);
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/auth/keys".into(),
            Some(json!({"name": "v"})),
        ),
        (
            Method::POST,
            "/auth/keys".into(),
            Some(json!({"name": "v", "team_id": ot})),
        ),
        (
            Method::POST,
            "/auth/teams".into(),
            Some(json!({"name": "mine"})),
        ),
        (
            Method::PATCH,
            format!("/auth/teams/{ot}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/auth/teams/{ot}"), None),
        (
            Method::PUT,
            format!("/auth/teams/{ot}/members/{viewer_id}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::PATCH,
            format!("/auth/keys/{ok}"),
            Some(json!({"name": "x"})),
        ),
        (Method::POST, format!("/auth/keys/{ok}/rotate"), None),
        (Method::POST, format!("/auth/keys/{ok}/revoke"), None),
        (Method::DELETE, format!("/auth/keys/{ok}"), None),
        (
            Method::PATCH,
            format!("/auth/members/{viewer_id}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::PATCH,
            format!("/auth/members/{ou}"),
            Some(json!({"role": "viewer"})),
        ),
        (Method::DELETE, format!("/auth/members/{ou}"), None),
        (Method::GET, "/auth/audit".into(), None),
    ];
    for (method, path, body) in attempts {
        let got = app.call(method.clone(), &path, Some(&viewer), body).await;
        assert_eq!(got.0, StatusCode::FORBIDDEN, "{method} {path}: {}", got.1);
        assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
        assert_eq!(got.1["error"]["code"], "permission_denied");
    }

    // Reading is allowed.
    let (status, keys) = app.get("/auth/keys", &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&keys, "id"), sorted([ok]));
    assert_eq!(app.get("/auth/teams", &viewer).await.0, StatusCode::OK);
    assert_eq!(app.get("/auth/members", &viewer).await.0, StatusCode::OK);
    let (_, me) = app.get("/auth/me", &viewer).await;
    assert_eq!(me["role"], "viewer");
    // Nothing changed.
    assert!(app.verifies(&owner.key).await);
    let (_, key) = app.get(&format!("/auth/keys/{ok}"), &owner.access).await;
    assert_eq!(key["name"], "default");
    let (_, team) = app.get(&format!("/auth/teams/{ot}"), &owner.access).await;
    assert_eq!(team["name"], "default");
    let (_, member) = app
        .get(&format!("/auth/members/{viewer_id}"), &owner.access)
        .await;
    assert_eq!(member["role"], "viewer");
}

async fn members_manage_only_their_own_keys_in_their_own_teams(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("olga@example.com", "Olga's").await;
    let (member_id, member) = join(&app, &owner, "pete@example.com", Role::Member).await;
    let ops = new_team(&app, &owner.access, "ops").await;

    // Not on any team yet: no keys.
    let got = create_key(&app, &member, json!({"name": "mine"})).await;
    assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    let (status, _) = app
        .put(
            &format!("/auth/teams/{}/members/{member_id}", owner.team_id),
            &owner.access,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, mine) = create_key(&app, &member, json!({"name": "mine"})).await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    assert_eq!(mine["created_by"], member_id.as_str());
    assert_eq!(mine["team_id"], owner.team_id.as_str());
    let mine_id = text(&mine["id"]);
    let got = create_key(&app, &member, json!({"name": "elsewhere", "team_id": ops})).await;
    assert_error(&got, StatusCode::FORBIDDEN, "permission_error");

    // Someone else's key: hands off.
    let ok = &owner.key_id;
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PATCH,
            format!("/auth/keys/{ok}"),
            Some(json!({"name": "x"})),
        ),
        (Method::POST, format!("/auth/keys/{ok}/rotate"), None),
        (Method::POST, format!("/auth/keys/{ok}/revoke"), None),
        (Method::DELETE, format!("/auth/keys/{ok}"), None),
        (
            Method::POST,
            "/auth/teams".into(),
            Some(json!({"name": "mine"})),
        ),
        (
            Method::PATCH,
            format!("/auth/members/{}", owner.user_id),
            Some(json!({"role": "member"})),
        ),
        (
            Method::PATCH,
            format!("/auth/members/{member_id}"),
            Some(json!({"role": "admin"})),
        ),
        (Method::GET, "/auth/audit".into(), None),
    ];
    for (method, path, body) in attempts {
        let got = app.call(method.clone(), &path, Some(&member), body).await;
        assert_eq!(got.0, StatusCode::FORBIDDEN, "{method} {path}: {}", got.1);
        assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    }
    assert!(app.verifies(&owner.key).await);

    // Their own key: theirs to change, rotate and revoke.
    let (status, _) = app
        .patch(
            &format!("/auth/keys/{mine_id}"),
            &member,
            json!({"name": "mine-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, rotated) = app
        .post(&format!("/auth/keys/{mine_id}/rotate"), &member, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, revoked) = app
        .call(
            Method::POST,
            &format!("/auth/keys/{}/revoke", text(&rotated["id"])),
            Some(&member),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(!app.verifies(&text(&rotated["key"])).await);

    // A member may leave; their session in the organization ends with it.
    let (status, _) = app
        .delete(&format!("/auth/members/{member_id}"), &member)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app.get("/auth/me", &member).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
}

async fn admins_manage_every_key_and_every_role_below_owner(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("quinn@example.com", "Quinn's").await;
    let (member_id, member) = join(&app, &owner, "rita@example.com", Role::Member).await;
    let (_, admin) = join(&app, &owner, "sam@example.com", Role::Admin).await;
    let (status, _) = app
        .put(
            &format!("/auth/teams/{}/members/{member_id}", owner.team_id),
            &owner.access,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (members_key, _) = new_key(&app, &member, json!({"name": "rita's"})).await;

    // Any key, in any team, though the admin is on none.
    let (status, _) = app
        .patch(
            &format!("/auth/keys/{members_key}"),
            &admin,
            json!({"rpm_limit": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, rotated) = app
        .post(
            &format!("/auth/keys/{members_key}/rotate"),
            &admin,
            json!({"grace_seconds": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, _) = app
        .delete(&format!("/auth/keys/{}", text(&rotated["id"])), &admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!app.verifies(&text(&rotated["key"])).await);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/auth/keys/{}/revoke", owner.key_id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.verify(&owner.key).await.unwrap_err(),
        KeyRejection::Revoked
    );
    let ops = new_team(&app, &admin, "ops").await;
    new_key(&app, &admin, json!({"name": "ops key", "team_id": ops})).await;
    assert_eq!(app.get("/auth/audit", &admin).await.0, StatusCode::OK);

    // Members are the owners' to manage: an admin changes no role and removes nobody.
    let member_path = format!("/auth/members/{member_id}");
    let owner_path = format!("/auth/members/{}", owner.user_id);
    for (path, role) in [
        (&member_path, "viewer"),
        (&member_path, "owner"),
        (&owner_path, "admin"),
    ] {
        let got = app.patch(path, &admin, json!({"role": role})).await;
        assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    }
    for path in [&member_path, &owner_path] {
        let got = app.delete(path, &admin).await;
        assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    }

    // The owner does; a role change applies to the very next request.
    let (status, demoted) = app
        .patch(&member_path, &owner.access, json!({"role": "viewer"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{demoted}");
    let got = create_key(&app, &member, json!({"name": "now a viewer"})).await;
    assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    let (status, _) = app
        .patch(&member_path, &owner.access, json!({"role": "member"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = create_key(&app, &member, json!({"name": "member again"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let bad_role = app
        .patch(&member_path, &owner.access, json!({"role": "root"}))
        .await;
    assert_error(&bad_role, StatusCode::BAD_REQUEST, "invalid_request_error");

    // Removing a member ends their access token and their refresh token in this organization.
    let (status, login) = app.login("rita@example.com", Some(&owner.org_id)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.delete(&member_path, &owner.access).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app.get("/auth/me", &member).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    let got = app.refresh(&text(&login["refresh_token"])).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    let got = app.get(&member_path, &admin).await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
}

async fn audit_log_is_admin_only_and_records_key_changes(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("tina@example.com", "Tina's").await;
    let (_, member) = join(&app, &owner, "uma@example.com", Role::Member).await;
    let got = app.get("/auth/audit", &member).await;
    assert_error(&got, StatusCode::FORBIDDEN, "permission_error");

    let (key_id, secret) = new_key(&app, &owner.access, json!({"name": "audited"})).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/auth/keys/{key_id}/revoke"),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, audit) = app.get("/auth/audit", &owner.access).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let entries = audit["data"].as_array().unwrap();
    let actor = format!("user:{}", owner.user_id);
    let find = |action: &str, target: &str| {
        entries
            .iter()
            .position(|e| e["action"] == action && e["target_id"] == target)
            .unwrap_or_else(|| panic!("no {action} of {target} in {audit}"))
    };
    let created = find("key.create", &key_id);
    let revoked = find("key.revoke", &key_id);
    assert!(revoked < created, "newest first: {audit}");
    for at in [created, revoked] {
        assert_eq!(entries[at]["actor"], actor.as_str());
        assert_eq!(entries[at]["org_id"], owner.org_id.as_str());
    }
    assert!(entries[revoked]["after"]["revoked_at"].is_i64(), "{audit}");
    // The sign-up's key too.
    assert_eq!(
        entries[find("key.create", &owner.key_id)]["actor"],
        actor.as_str()
    );
    // Never a secret.
    let raw = audit.to_string();
    assert!(
        !raw.contains(&secret[3..]) && !raw.contains(&owner.key[3..]),
        "{raw}"
    );
    assert!(
        !raw.contains("key_hash") && !raw.contains("password"),
        "{raw}"
    );

    let (_, newest) = app.get("/auth/audit?limit=1", &owner.access).await;
    assert_eq!(newest["data"].as_array().unwrap().len(), 1);
    assert_eq!(newest["data"][0]["action"], "key.revoke");
    for query in ["limit=0", "limit=1001", "limit=abc", "limit=-1", "since=1"] {
        let got = app
            .get(&format!("/auth/audit?{query}"), &owner.access)
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    }
}

// ---- bad input ----

/// Sends `body` as the raw bytes of a request.
async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value) {
    app.send_json(request(method, path, token, None).set_payload(body.to_vec()))
        .await
}

async fn malformed_bodies_are_refused_with_openai_errors(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("vic@example.com", "Vic's").await;
    let valid_signup = format!(
        r#"{{"email": "new@example.com", "password": "{PASSWORD}", "organization": "New"}}"#
    );

    let raw_bodies: Vec<Vec<u8>> = vec![
        br#"{"email":"#.to_vec(),
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\"a string\"".to_vec(),
        b"{\"email\": \"\xff\xfe@example.com\"}".to_vec(),
        format!("{valid_signup} {{}}").into_bytes(),
        br#"{"email": 5, "password": "correct horse battery staple", "organization": "x"}"#
            .to_vec(),
        br#"{"email": "x@example.com", "password": "correct horse battery staple", "organization": "x", "role": "owner"}"#.to_vec(),
        br#"{"email": "x@example.com"}"#.to_vec(),
        br#"{"email": null, "password": null, "organization": null}"#.to_vec(),
    ];
    for body in &raw_bodies {
        let got = send_raw(&app, Method::POST, "/auth/signup", None, body).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    }
    let got = send_raw(&app, Method::POST, "/auth/signup", None, br#"{"email":"#).await;
    assert_eq!(got.1["error"]["code"], "invalid_json");
    let got = send_raw(&app, Method::POST, "/auth/signup", None, &raw_bodies[8]).await;
    assert_eq!(got.1["error"]["param"], "email", "{}", got.1);
    // None of those created anything (the trailing-garbage one was otherwise valid).
    assert!(
        app.store()
            .credentials("new@example.com")
            .await
            .unwrap()
            .is_none()
    );

    let token = Some(t.access.as_str());
    let key_path = format!("/auth/keys/{}", t.key_id);
    let cases: Vec<(Method, &str, Option<&str>, Vec<u8>)> = vec![
        (
            Method::POST,
            "/auth/login",
            None,
            br#"{"email": 5, "password": 5}"#.to_vec(),
        ),
        (Method::POST, "/auth/login", None, b"".to_vec()),
        (
            Method::POST,
            "/auth/refresh",
            None,
            br#"{"refresh_token": 5}"#.to_vec(),
        ),
        (Method::POST, "/auth/refresh", None, b"{}".to_vec()),
        (Method::POST, "/auth/logout", None, b"{".to_vec()),
        (Method::POST, "/auth/keys", token, b"".to_vec()),
        (
            Method::POST,
            "/auth/keys",
            token,
            br#"{"rpm_limit": "x"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/auth/keys",
            token,
            br#"{"rpm_limit": 1.5}"#.to_vec(),
        ),
        (
            Method::POST,
            "/auth/keys",
            token,
            br#"{"name": ["a"]}"#.to_vec(),
        ),
        (
            Method::POST,
            "/auth/keys",
            token,
            br#"{"tags": {"a": 1}}"#.to_vec(),
        ),
        (
            Method::POST,
            "/auth/keys",
            token,
            br#"{"org_id": "x"}"#.to_vec(),
        ),
        // Fields that are not the client's to set.
        (
            Method::PATCH,
            &key_path,
            token,
            br#"{"created_by": null}"#.to_vec(),
        ),
        (
            Method::PATCH,
            &key_path,
            token,
            br#"{"team_id": "x"}"#.to_vec(),
        ),
        (
            Method::PATCH,
            &key_path,
            token,
            br#"{"org_id": "x"}"#.to_vec(),
        ),
        (
            Method::PATCH,
            &key_path,
            token,
            br#"{"revoked_at": null}"#.to_vec(),
        ),
        (
            Method::PATCH,
            &key_path,
            token,
            br#"{"disabled": "no"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/auth/teams",
            token,
            br#"{"name": 5}"#.to_vec(),
        ),
        (
            Method::POST,
            "/auth/teams",
            token,
            br#"{"name": "x", "org_id": "y"}"#.to_vec(),
        ),
    ];
    for (method, path, token, body) in cases {
        let got = send_raw(&app, method.clone(), path, token, &body).await;
        assert_eq!(
            got.0,
            StatusCode::BAD_REQUEST,
            "{method} {path} {}: {}",
            String::from_utf8_lossy(&body),
            got.1
        );
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    }
    let got = send_raw(
        &app,
        Method::POST,
        "/auth/keys",
        token,
        br#"{"rpm_limit": "x"}"#,
    )
    .await;
    assert_eq!(got.1["error"]["param"], "rpm_limit", "{}", got.1);

    // Nothing was created or changed.
    let (_, keys) = app.get("/auth/keys", &t.access).await;
    assert_eq!(ids(&keys, "id"), sorted([&t.key_id]));
    let (_, teams) = app.get("/auth/teams", &t.access).await;
    assert_eq!(ids(&teams, "id"), sorted([&t.team_id]));
    assert!(app.verifies(&t.key).await);
}

async fn oversized_bodies_are_refused_with_413(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("wade@example.com", "Wade's").await;
    let big = json!({"name": "x".repeat(70_000)}).to_string().into_bytes();
    for (path, token) in [
        ("/auth/keys", Some(t.access.as_str())),
        ("/auth/signup", None),
    ] {
        let got = send_raw(&app, Method::POST, path, token, &big).await;
        assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error");
        assert_eq!(got.1["error"]["code"], "request_too_large");
    }
    // A Content-Length that understates the body does not get it through.
    let lying = request(Method::POST, "/auth/keys", Some(&t.access), None)
        .set_payload(big.clone())
        .insert_header((CONTENT_LENGTH, "16"));
    let got = app.send_json(lying).await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error");
    // Just under the limit, the body is read and judged on its content.
    let under = json!({"name": "x".repeat(60_000)}).to_string().into_bytes();
    let got = send_raw(&app, Method::POST, "/auth/keys", Some(&t.access), &under).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    assert_eq!(got.1["error"]["param"], "name");
    let (_, keys) = app.get("/auth/keys", &t.access).await;
    assert_eq!(ids(&keys, "id"), sorted([&t.key_id]));
}

async fn over_long_and_hostile_strings_are_refused_or_stored_literally(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("xena@example.com", "Xena's").await;

    // Length limits, checked in characters.
    let got = app
        .post("/auth/teams", &t.access, json!({"name": "x".repeat(101)}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    assert_eq!(got.1["error"]["param"], "name");
    let hundred = "é".repeat(100);
    let (status, team) = app
        .post("/auth/teams", &t.access, json!({"name": hundred}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    assert_eq!(team["name"], hundred.as_str());
    let got = create_key(&app, &t.access, json!({"name": "k".repeat(101)})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    for name in ["", "   ", "line\nbreak", "nul\u{0}byte"] {
        let got = app
            .post("/auth/teams", &t.access, json!({"name": name}))
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    }
    let long_email = format!("{}@example.com", "a".repeat(243));
    assert_eq!(long_email.len(), 255);
    let bad_signups = [
        json!({"email": long_email, "password": PASSWORD, "organization": "x"}),
        json!({"email": "ok@example.com", "password": PASSWORD, "organization": "o".repeat(101)}),
        json!({"email": "nul\u{0}@example.com", "password": PASSWORD, "organization": "x"}),
        json!({"email": "two words@example.com", "password": PASSWORD, "organization": "x"}),
        json!({"email": "no-at-sign", "password": PASSWORD, "organization": "x"}),
        json!({"email": "a@nodot", "password": PASSWORD, "organization": "x"}),
    ];
    for body in bad_signups {
        let got = app
            .call(Method::POST, "/auth/signup", None, Some(body.clone()))
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    }

    // SQL metacharacters are data, stored and returned as they were sent.
    let hostile = [
        "Robert'); DROP TABLE teams;--",
        "' OR '1'='1",
        "x\"; DELETE FROM virtual_keys; --",
        "%_\\' UNION SELECT * FROM users --",
        "$1 $2 ?; /* */",
    ];
    for name in hostile {
        let (status, team) = app
            .post("/auth/teams", &t.access, json!({"name": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {team}");
        let (_, got) = app
            .get(&format!("/auth/teams/{}", text(&team["id"])), &t.access)
            .await;
        assert_eq!(got["name"], name);
        let (status, key) =
            create_key(&app, &t.access, json!({"name": name, "tags": {name: name}})).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {key}");
        let (_, got) = app
            .get(&format!("/auth/keys/{}", text(&key["id"])), &t.access)
            .await;
        assert_eq!(got["name"], name);
        assert_eq!(got["tags"][name], name);
    }
    let sql_email = "o'hara\";DROP/**/TABLE/**/users;--@example.com";
    let sql_org = "'); DELETE FROM organizations; --";
    let hostile_tenant = app.signup(sql_email, sql_org).await;
    let (_, me) = app.get("/auth/me", &hostile_tenant.access).await;
    assert_eq!(me["user"]["email"], sql_email);
    assert_eq!(me["organization"]["name"], sql_org);
    assert_eq!(app.login(sql_email, None).await.0, StatusCode::OK);
    for email in [
        "' OR '1'='1",
        "x' OR 1=1 --@example.com",
        "xena@example.com' --",
    ] {
        let got = app.login(email, None).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    }
    // A NUL byte in a login email (PostgreSQL refuses it in text) is just a wrong email.
    let got = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "xena\u{0}@example.com", "password": PASSWORD})),
        )
        .await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");

    // The tables still work.
    let (_, teams) = app.get("/auth/teams", &t.access).await;
    assert_eq!(ids(&teams, "id").len(), 2 + hostile.len());
    let (_, keys) = app.get("/auth/keys", &t.access).await;
    assert_eq!(ids(&keys, "id").len(), 1 + hostile.len());
    assert!(app.verifies(&t.key).await);
    assert!(app.verifies(&hostile_tenant.key).await);
    app.signup("after@example.com", "After").await;
    assert_eq!(app.store().all_organizations().await.unwrap().len(), 3);
}

async fn password_policy_names_the_broken_rule(db: Db) {
    let app = TestApp::start(db).await;
    let email = "dana.doe@example.com";
    let cases = [
        ("short pw", "at least 12 characters"),
        ("abababababababab", "at least 5 different characters"),
        ("my dana.doe passphrase", "must not contain your email"),
        (&*"x1y2z3".repeat(22), "at most 128 characters"),
    ];
    for (password, rule) in cases {
        let got = app
            .call(
                Method::POST,
                "/auth/signup",
                None,
                Some(json!({"email": email, "password": password, "organization": "D"})),
            )
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
        assert_eq!(got.1["error"]["param"], "password");
        let message = text(&got.1["error"]["message"]);
        assert!(message.contains(rule), "{password:?}: {message}");
        assert!(
            !message.contains(password),
            "the password is echoed: {message}"
        );
    }
    assert!(app.store().credentials(email).await.unwrap().is_none());
    // The same address with a good password is fine.
    app.signup(email, "D").await;
}

async fn key_settings_are_validated(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("yves@example.com", "Yves's").await;
    let many_models: Vec<String> = (0..101).map(|i| format!("m{i}")).collect();
    let many_tags: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("t{i}"), json!("v"))).collect();
    let refused = [
        ("budget_usd", json!({"budget_usd": "-1"})),
        ("budget_usd", json!({"budget_usd": -5})),
        ("budget_usd", json!({"budget_usd": "-0.01"})),
        ("budget_usd", json!({"budget_usd": "ten"})),
        ("budget_usd", json!({"budget_usd": true})),
        ("budget_usd", json!({"budget_usd": [1]})),
        ("budget_usd", json!({"budget_usd": "1e400"})),
        ("budget_usd", json!({"budget_usd": "NaN"})),
        ("budget_usd", json!({"budget_usd": "1000000001"})),
        ("expires_at", json!({"expires_at": now_ms() - 1000})),
        ("expires_at", json!({"expires_at": 0})),
        ("expires_at", json!({"expires_at": "tomorrow"})),
        ("budget_period", json!({"budget_period": "yearly"})),
        ("budget_period", json!({"budget_period": ""})),
        ("rpm_limit", json!({"rpm_limit": 0})),
        ("rpm_limit", json!({"rpm_limit": -1})),
        ("tpm_limit", json!({"tpm_limit": 10_000_000_000_000_i64})),
        ("allowed_models", json!({"allowed_models": [""]})),
        ("allowed_models", json!({"allowed_models": many_models})),
        ("tags", json!({"tags": {"": "x"}})),
        ("tags", json!({"tags": many_tags})),
        ("tags", json!({"tags": {"env": "prod\u{0}"}})),
        ("tags", json!({"tags": {"e\u{1b}nv": "x"}})),
        ("tags", json!({"tags": {"env": "v".repeat(257)}})),
        ("name", json!({"name": "ci\u{0}"})),
        ("name", json!({"name": "n".repeat(101)})),
        ("metadata", json!({"metadata": {"blob": "x".repeat(5000)}})),
    ];
    for (param, spec) in &refused {
        let got = create_key(&app, &t.access, spec.clone()).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{spec}: {}", got.1);
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
        assert_eq!(got.1["error"]["param"], *param, "{spec}: {}", got.1);
    }
    let key_path = format!("/auth/keys/{}", t.key_id);
    for patch in [
        json!({"budget_usd": "-0.01"}),
        json!({"budget_usd": "lots"}),
        json!({"expires_at": 1}),
        json!({"budget_period": "hourly"}),
        json!({"rpm_limit": 0}),
        json!({"name": ""}),
    ] {
        let got = app.patch(&key_path, &t.access, patch.clone()).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{patch}: {}", got.1);
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    }
    let rotate_path = format!("{key_path}/rotate");
    for body in [
        json!({"grace_seconds": -1}),
        json!({"grace_seconds": 2_592_001}),
        json!({"grace_seconds": "soon"}),
        json!({"grace": 5}),
    ] {
        let got = app.post(&rotate_path, &t.access, body.clone()).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{body}: {}", got.1);
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
    }

    // Nothing was half-done: one key, as signed up.
    let (_, keys) = app.get("/auth/keys", &t.access).await;
    assert_eq!(ids(&keys, "id"), sorted([&t.key_id]));
    let (_, key) = app.get(&key_path, &t.access).await;
    assert_eq!(key["status"], "active");
    assert_eq!(key["budget_usd"], Value::Null);
    assert_eq!(key["rpm_limit"], Value::Null);
    assert_eq!(key["expires_at"], Value::Null);
    assert!(app.verifies(&t.key).await);

    // Amounts are exact, from strings or numbers; the edges are accepted.
    for (given, stored) in [
        (json!("0"), "0"),
        (json!(0.1), "0.1"),
        (json!("19.99"), "19.99"),
        (json!(1_000_000_000), "1000000000"),
    ] {
        let (status, key) = create_key(&app, &t.access, json!({"budget_usd": given})).await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        assert_eq!(key["budget_usd"], stored);
    }
}

async fn bad_paths_and_methods_are_404_and_405(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("zoe@example.com", "Zoe's").await;
    let (tid, kid, uid) = (&t.team_id, &t.key_id, &t.user_id);
    let unknown = OrgId::generate().to_string();

    let not_found: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/auth/keys/not-a-key".into(), None),
        (Method::GET, format!("/auth/keys/{unknown}"), None),
        (
            Method::GET,
            "/auth/teams/'%3B%20DROP%20TABLE%20teams%3B--".into(),
            None,
        ),
        (Method::GET, format!("/auth/teams/{unknown}"), None),
        (Method::GET, "/auth/members/42".into(), None),
        (Method::GET, format!("/auth/members/{unknown}"), None),
        (
            Method::PATCH,
            "/auth/keys/xyz".into(),
            Some(json!({"name": "n"})),
        ),
        (Method::POST, "/auth/keys/xyz/rotate".into(), None),
        (Method::POST, "/auth/keys/%00/revoke".into(), None),
        (Method::DELETE, "/auth/teams/xyz".into(), None),
        (Method::GET, "/auth/teams/xyz/members".into(), None),
        (
            Method::PUT,
            format!("/auth/teams/{tid}/members/nope"),
            Some(json!({"role": "member"})),
        ),
        (
            Method::PUT,
            format!("/auth/teams/nope/members/{uid}"),
            Some(json!({"role": "member"})),
        ),
        (Method::GET, "/auth/keys?team_id=nope".into(), None),
        (Method::GET, format!("/auth/keys?team_id={unknown}"), None),
        (
            Method::POST,
            "/auth/keys".into(),
            Some(json!({"team_id": "nope"})),
        ),
        (
            Method::POST,
            "/auth/keys".into(),
            Some(json!({"team_id": unknown})),
        ),
        // unknown routes
        (Method::GET, "/auth/nope".into(), None),
        (Method::GET, "/auth/keys/a/b/c".into(), None),
        (Method::POST, format!("/auth/keys/{kid}/explode"), None),
        (
            Method::GET,
            format!("/auth/teams/{tid}/members/{uid}/x"),
            None,
        ),
        // internal endpoints do not exist without a service token
        (
            Method::POST,
            "/auth/internal/keys/lookup".into(),
            Some(json!({"key_hash": "00"})),
        ),
    ];
    for (method, path, body) in not_found {
        let got = app.call(method.clone(), &path, Some(&t.access), body).await;
        assert_eq!(got.0, StatusCode::NOT_FOUND, "{method} {path}: {}", got.1);
        assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
    }

    let wrong_method: Vec<(Method, String)> = vec![
        (Method::GET, "/auth/signup".into()),
        (Method::GET, "/auth/login".into()),
        (Method::PUT, "/auth/refresh".into()),
        (Method::DELETE, "/auth/me".into()),
        (Method::POST, "/auth/me".into()),
        (Method::PUT, "/auth/keys".into()),
        (Method::DELETE, "/auth/teams".into()),
        (Method::GET, format!("/auth/keys/{kid}/rotate")),
        (Method::PUT, format!("/auth/keys/{kid}")),
        (Method::POST, format!("/auth/teams/{tid}/members")),
        (Method::POST, "/auth/audit".into()),
    ];
    for (method, path) in wrong_method {
        let got = app.call(method.clone(), &path, Some(&t.access), None).await;
        assert_eq!(
            got.0,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            got.1
        );
        assert_error(
            &got,
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
        );
    }
}

fn claims_of(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, secret: &str) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn broken_or_forged_access_tokens_are_refused(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("abe@example.com", "Abe's").await;
    let b = app.signup("bea@example.com", "Bea's").await;
    let claims = claims_of(&t.access);
    let with = |changes: Value| {
        let mut changed = claims.clone();
        for (k, v) in changes.as_object().unwrap() {
            changed[k] = v.clone();
        }
        changed
    };
    let now = now_ms() / 1000;

    // The forging harness itself is right: with the real key, a forged token is accepted.
    let control = sign(Algorithm::HS256, Some(SIGNING_KID), &claims, SIGNING_SECRET);
    assert_eq!(app.get("/auth/me", &control).await.0, StatusCode::OK);

    let header_of = |json: &str| URL_SAFE_NO_PAD.encode(json);
    let parts: Vec<&str> = t.access.split('.').collect();
    let other_payload = URL_SAFE_NO_PAD.encode(with(json!({"org": b.org_id})).to_string());
    let wrong_secret = "a-different-secret-that-is-also-long-enough";
    let invalid = [
        (
            "wrong signature",
            sign(Algorithm::HS256, Some(SIGNING_KID), &claims, wrong_secret),
        ),
        (
            "unknown kid",
            sign(Algorithm::HS256, Some("other-kid"), &claims, SIGNING_SECRET),
        ),
        (
            "no kid",
            sign(Algorithm::HS256, None, &claims, SIGNING_SECRET),
        ),
        (
            "HS512",
            sign(Algorithm::HS512, Some(SIGNING_KID), &claims, SIGNING_SECRET),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                header_of(&format!(
                    r#"{{"alg":"none","typ":"JWT","kid":"{SIGNING_KID}"}}"#
                )),
                parts[1]
            ),
        ),
        (
            "tampered claims",
            format!("{}.{other_payload}.{}", parts[0], parts[2]),
        ),
        ("no signature", format!("{}.{}.", parts[0], parts[1])),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                Some(SIGNING_KID),
                &with(json!({"iss": "evil"})),
                SIGNING_SECRET,
            ),
        ),
        (
            "wrong audience",
            sign(
                Algorithm::HS256,
                Some(SIGNING_KID),
                &with(json!({"aud": "evil"})),
                SIGNING_SECRET,
            ),
        ),
        // Validly signed, but for an organization the user is not in, or a session that
        // does not exist: the service checks both against its tables.
        (
            "foreign org",
            sign(
                Algorithm::HS256,
                Some(SIGNING_KID),
                &with(json!({"org": b.org_id})),
                SIGNING_SECRET,
            ),
        ),
        (
            "unknown session",
            sign(
                Algorithm::HS256,
                Some(SIGNING_KID),
                &with(json!({"sid": "made-up"})),
                SIGNING_SECRET,
            ),
        ),
        (
            "not a user id",
            sign(
                Algorithm::HS256,
                Some(SIGNING_KID),
                &with(json!({"sub": "root"})),
                SIGNING_SECRET,
            ),
        ),
        ("garbage", "garbage".into()),
        ("three dots", "a.b.c".into()),
        ("empty", String::new()),
        ("a refresh token", t.refresh.clone()),
        ("an API key", t.key.clone()),
    ];
    for (case, token) in &invalid {
        let got = app.get("/auth/me", token).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
        assert_eq!(
            got.1["error"]["message"], TOKEN_INVALID,
            "{case}: {}",
            got.1
        );
        assert_eq!(got.1["error"]["code"], "invalid_token", "{case}");
    }

    let expired = sign(
        Algorithm::HS256,
        Some(SIGNING_KID),
        &with(json!({"iat": now - 1000, "exp": now - 120})),
        SIGNING_SECRET,
    );
    let got = app.get("/auth/me", &expired).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    assert_eq!(got.1["error"]["code"], "token_expired");

    // No token at all, or not a bearer one.
    let response = app.send(request(Method::GET, "/auth/me", None, None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers().get(WWW_AUTHENTICATE).unwrap(), "Bearer");
    for header in [
        format!("Basic {}", URL_SAFE_NO_PAD.encode("abe:pw")),
        t.access.clone(),
    ] {
        let got = app
            .send_json(
                request(Method::GET, "/auth/keys", None, None)
                    .insert_header((actix_web::http::header::AUTHORIZATION, header)),
            )
            .await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
        assert_eq!(got.1["error"]["code"], "missing_token");
    }
    // Every protected route checks.
    for path in ["/auth/keys", "/auth/teams", "/auth/members", "/auth/audit"] {
        let got = app.call(Method::GET, path, None, None).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
        let got = app.get(path, &invalid[0].1).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    }
    let got = app
        .call(
            Method::POST,
            "/auth/keys",
            None,
            Some(json!({"name": "anon"})),
        )
        .await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    // The token that was forged from still works: nothing above hurt the real session.
    assert_eq!(app.get("/auth/me", &t.access).await.0, StatusCode::OK);
}

// ---- login throttling ----

async fn login_from(
    app: &TestApp,
    ip: &str,
    email: &str,
    password: &str,
) -> actix_web::dev::ServiceResponse {
    app.send(
        request(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .peer_addr(peer(ip)),
    )
    .await
}

fn throttled(per_email_per_client: u32, per_ip: u32) -> impl FnOnce(&mut tollgate_common::Config) {
    move |config| {
        config.auth.login_throttle = LoginThrottleConfig {
            per_email_per_client,
            per_ip,
            per_email: 1000,
            window_secs: 60,
        };
    }
}

#[track_caller]
fn assert_throttled(response: &actix_web::dev::ServiceResponse) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response
        .headers()
        .get(RETRY_AFTER)
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
}

async fn failed_logins_are_throttled_per_email_and_client(db: Db) {
    let app = TestApp::start_with(db, throttled(3, 100)).await;
    let t = app.signup("cleo@example.com", "Cleo's").await;
    app.signup("dora@example.com", "Dora's").await;
    // The email's case does not give more attempts.
    for email in ["cleo@example.com", "CLEO@example.com", " Cleo@Example.com "] {
        let response = login_from(&app, "198.51.100.1", email, "wrong password!").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = login_from(&app, "198.51.100.1", &t.email, PASSWORD).await;
    assert_throttled(&response);
    let body: Value = actix_web::test::read_body_json(response).await;
    assert_error(
        &(StatusCode::TOO_MANY_REQUESTS, body.clone()),
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
    );
    assert_eq!(body["error"]["code"], "too_many_attempts");
    // The owner, from anywhere else, is not locked out by those failures; other accounts are
    // not affected from that client either, and the sessions already open stay open.
    for ip in ["198.51.100.9", "2001:db8::1"] {
        let response = login_from(&app, ip, &t.email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = login_from(&app, "198.51.100.1", "dora@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.get("/auth/me", &t.access).await.0, StatusCode::OK);
}

async fn failed_logins_are_throttled_per_client_ip(db: Db) {
    let app = TestApp::start_with(db, throttled(100, 3)).await;
    let t = app.signup("gail@example.com", "Gail's").await;
    for i in 0..3 {
        let response = login_from(
            &app,
            "203.0.113.7",
            &format!("nobody{i}@example.com"),
            PASSWORD,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = login_from(&app, "203.0.113.7", &t.email, PASSWORD).await;
    assert_throttled(&response);
    // X-Forwarded-For is the client's to forge: it does not change which IP is counted.
    let response = app
        .send(
            request(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"email": t.email, "password": PASSWORD})),
            )
            .peer_addr(peer("203.0.113.7"))
            .insert_header(("x-forwarded-for", "192.0.2.1")),
        )
        .await;
    assert_throttled(&response);
    let response = login_from(&app, "203.0.113.8", &t.email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn wrong_password_and_unknown_email_answer_alike(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("hugo@example.com", "Hugo's").await;
    let attempts = [
        json!({"email": t.email, "password": "not the password"}),
        json!({"email": "nobody@example.com", "password": PASSWORD}),
        json!({"email": "nobody@example.com", "password": "not the password"}),
        json!({"email": "", "password": PASSWORD}),
        json!({"email": format!("{}@example.com", "a".repeat(300)), "password": PASSWORD}),
        json!({"email": t.email, "password": "p".repeat(2000)}),
    ];
    let mut answers = Vec::new();
    for body in attempts {
        let got = app
            .call(Method::POST, "/auth/login", None, Some(body))
            .await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
        answers.push(got.1);
    }
    assert_eq!(answers[0]["error"]["message"], BAD_CREDENTIALS);
    assert_eq!(answers[0]["error"]["code"], "invalid_credentials");
    for answer in &answers[1..] {
        assert_eq!(answer, &answers[0]);
    }
}

/// Each sign-up counts against its client, the ones that made an account too: a client cannot
/// make organizations (each with the free allowance) by the hundred; another client can still
/// sign up.
async fn signups_are_limited_per_client_made_accounts_included(db: Db) {
    let app = TestApp::start_with(db, |config| {
        config.auth.signup_throttle.per_ip = 3;
    })
    .await;
    let signup_from = |ip: &'static str, n: usize| {
        request(
            Method::POST,
            "/auth/signup",
            None,
            Some(json!({
                "email": format!("farm-{ip}-{n}@example.com"),
                "password": "a long enough passphrase",
                "organization": format!("Farm {n}"),
            })),
        )
        .peer_addr(peer(ip))
    };
    for n in 0..3 {
        let res = app.send(signup_from("198.51.100.9", n)).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let res = app.send(signup_from("198.51.100.9", 3)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(RETRY_AFTER));
    // Other clients still sign up.
    let res = app.send(signup_from("2001:db8::1", 0)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = app.send(signup_from("203.0.113.4", 0)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

/// No organization, team or key may lift its own limits past the deployment's ceilings, nor
/// past its plan's where billing is on (an organization without a card is on the free plan).
async fn limits_above_the_deployments_ceilings_are_refused(db: Db) {
    let app = TestApp::start_with(db, |config| {
        config.limits.max_rpm = Some(1000);
        config.limits.max_tpm = Some(100_000);
        config.limits.default.tpm = 100_000;
        config.limits.plans.free.max_rpm = Some(100);
        config.billing.stripe = Some(
            serde_json::from_value(json!({
                "api_base": "http://127.0.0.1:9",
                "secret_key": "sk_test_x",
                "webhook_secret": "whsec_x",
            }))
            .unwrap(),
        );
    })
    .await;
    let t = app.signup("ceiling@example.com", "Ceiling").await;
    for (spec, param) in [
        (json!({"rpm_limit": 101}), "rpm_limit"),
        (json!({"rpm_limit": 5000}), "rpm_limit"),
        (json!({"tpm_limit": 100_001}), "tpm_limit"),
    ] {
        let got = create_key(&app, &t.access, spec.clone()).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{spec}: {}", got.1);
        assert_eq!(got.1["error"]["param"], param, "{}", got.1);
    }
    let (id, _) = new_key(
        &app,
        &t.access,
        json!({"rpm_limit": 100, "tpm_limit": 100_000}),
    )
    .await;
    let got = app
        .patch(
            &format!("/auth/keys/{id}"),
            &t.access,
            json!({"rpm_limit": 101}),
        )
        .await;
    assert_eq!(got.0, StatusCode::BAD_REQUEST, "{}", got.1);
    let got = app
        .put("/auth/limits", &t.access, json!({"rpm": 5000}))
        .await;
    assert_eq!(
        (got.0, &got.1["error"]["param"]),
        (StatusCode::BAD_REQUEST, &json!("rpm"))
    );
    let team_limits = format!("/auth/teams/{}/limits", t.team_id);
    let got = app
        .put(
            &team_limits,
            &t.access,
            json!({"models": {"gpt-4o": {"tpm": 200_000}}}),
        )
        .await;
    assert_eq!(got.0, StatusCode::BAD_REQUEST, "{}", got.1);
    assert_eq!(got.1["error"]["param"], "models.gpt-4o.tpm");
    let got = app
        .put(&team_limits, &t.access, json!({"rpm": 100, "tpm": 50_000}))
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
}

async fn rate_limits_are_set_on_teams_and_organizations_and_reach_the_key(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("rl-owner@example.com", "Limits Inc").await;
    let other = app.signup("rl-other@example.com", "Elsewhere").await;
    let team_limits = format!("/auth/teams/{}/limits", owner.team_id);

    // nothing set: no team limits, no organization defaults (the deployment's apply)
    let (status, body) = app.get(&team_limits, &owner.access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"rpm": null, "tpm": null, "models": {}}));
    assert_eq!(
        app.get("/auth/limits", &owner.access).await.1,
        json!({"rpm": null, "tpm": null})
    );

    // the key's context follows every change at once
    let limits = json!({"rpm": 100, "tpm": 50000, "models": {"gpt-4o": {"rpm": 5}}});
    let (status, body) = app.put(&team_limits, &owner.access, limits.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.get(&team_limits, &owner.access).await.1["models"]["gpt-4o"]["rpm"],
        5
    );
    let (status, _) = app
        .put(
            "/auth/limits",
            &owner.access,
            json!({"rpm": 30, "tpm": 9000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ctx = app.verify(&owner.key).await.unwrap();
    assert_eq!((ctx.rpm_limit, ctx.tpm_limit), (Some(30), Some(9000)));
    assert_eq!(
        (ctx.team_limits.rpm, ctx.team_limits.tpm),
        (Some(100), Some(50000))
    );
    assert_eq!(ctx.team_model_limits["gpt-4o"].rpm, Some(5));
    assert_eq!(ctx.team_model_limits["gpt-4o"].tpm, None);
    // a key's own limits win over the organization's defaults
    let (_, own) = new_key(&app, &owner.access, json!({"rpm_limit": 7})).await;
    let ctx = app.verify(&own).await.unwrap();
    assert_eq!((ctx.rpm_limit, ctx.tpm_limit), (Some(7), Some(9000)));

    // bad values are refused, naming the field
    for (path, body, param) in [
        (team_limits.as_str(), json!({"rpm": 0}), "rpm"),
        (team_limits.as_str(), json!({"tpm": -5}), "tpm"),
        (
            team_limits.as_str(),
            json!({"models": {"gpt-4o": {"rpm": "x"}}}),
            "models.gpt-4o.rpm",
        ),
        (
            team_limits.as_str(),
            json!({"models": {"": {"rpm": 1}}}),
            "models",
        ),
        (team_limits.as_str(), json!({"rpm": 5, "burst": 9}), ""),
        ("/auth/limits", json!({"rpm": 0}), "rpm"),
    ] {
        let got = app.put(path, &owner.access, body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
        if !param.is_empty() {
            assert_eq!(got.1["error"]["param"], param, "{body}: {}", got.1);
        }
    }

    // another organization can neither read nor change them
    let got = app.get(&team_limits, &other.access).await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
    let got = app
        .put(&team_limits, &other.access, json!({"rpm": 1}))
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
    let (status, _) = app
        .put("/auth/limits", &other.access, json!({"rpm": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "its own organization only");
    let ctx = app.verify(&owner.key).await.unwrap();
    assert_eq!((ctx.rpm_limit, ctx.team_limits.rpm), (Some(30), Some(100)));

    // viewers read, only admins (or team admins) change
    let (_, viewer) = join(&app, &owner, "rl-viewer@example.com", Role::Viewer).await;
    assert_eq!(app.get(&team_limits, &viewer).await.0, StatusCode::OK);
    let got = app.put(&team_limits, &viewer, json!({"rpm": 1})).await;
    assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    let got = app.put("/auth/limits", &viewer, json!({"rpm": 1})).await;
    assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    assert_eq!(app.get(&team_limits, &owner.access).await.1["rpm"], 100);
}

async fn cache_policies_merge_from_key_to_organization_and_stay_in_their_organization(db: Db) {
    use tollgate_common::{CachePolicy, CachePolicyMode, CacheShare};

    let app = TestApp::start(db).await;
    let owner = app.signup("cp-owner@example.com", "Cache Inc").await;
    let other = app.signup("cp-other@example.com", "Elsewhere").await;
    let org_policy = "/auth/cache-policy";
    let team_policy = format!("/auth/teams/{}/cache-policy", owner.team_id);
    let key_policy = format!("/auth/keys/{}/cache-policy", owner.key_id);

    // nothing set anywhere: every field inherits (the deployment decides)
    for path in [org_policy, &team_policy, &key_policy] {
        let (status, body) = app.get(path, &owner.access).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, json!({"mode": null, "ttl_secs": null, "share": null}));
    }
    assert_eq!(
        app.verify(&owner.key).await.unwrap().cache,
        CachePolicy::default()
    );

    // each level sets what it wants; the key's context merges them, narrowest first
    for (path, policy) in [
        (org_policy, json!({"mode": "semantic", "ttl_secs": 600})),
        (&team_policy, json!({"share": "team", "ttl_secs": 120})),
        (&key_policy, json!({"mode": "exact"})),
    ] {
        let (status, body) = app.put(path, &owner.access, policy.clone()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(app.get(path, &owner.access).await.1["mode"], policy["mode"]);
    }
    assert_eq!(
        app.verify(&owner.key).await.unwrap().cache,
        CachePolicy {
            mode: Some(CachePolicyMode::Exact),
            ttl_secs: Some(120),
            share: Some(CacheShare::Team),
        }
    );
    // another key of the same team inherits the team's and organization's settings only
    let (_, sibling) = new_key(&app, &owner.access, json!({})).await;
    assert_eq!(
        app.verify(&sibling).await.unwrap().cache,
        CachePolicy {
            mode: Some(CachePolicyMode::Semantic),
            ttl_secs: Some(120),
            share: Some(CacheShare::Team),
        }
    );

    // bad values are refused, naming the field
    for (body, param) in [
        (json!({"mode": "sometimes"}), ""),
        (json!({"ttl_secs": 0}), "ttl_secs"),
        (json!({"ttl_secs": 99_999_999}), "ttl_secs"),
        (json!({"ttl_secs": -1}), ""),
        (json!({"mode": "exact", "colour": "blue"}), ""),
    ] {
        let got = app.put(&key_policy, &owner.access, body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
        if !param.is_empty() {
            assert_eq!(got.1["error"]["param"], param, "{body}: {}", got.1);
        }
    }

    // another organization can neither read nor change my team's or key's policy, and its own
    // organization policy does not touch mine
    for path in [&team_policy, &key_policy] {
        let got = app.get(path, &other.access).await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
        let got = app.put(path, &other.access, json!({"mode": "off"})).await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
    }
    let (status, _) = app
        .put(org_policy, &other.access, json!({"mode": "off"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.verify(&sibling).await.unwrap().cache.mode,
        Some(CachePolicyMode::Semantic)
    );

    // viewers read; only admins change the organization's policy
    let (_, viewer) = join(&app, &owner, "cp-viewer@example.com", Role::Viewer).await;
    assert_eq!(app.get(org_policy, &viewer).await.0, StatusCode::OK);
    for path in [org_policy, &team_policy, &key_policy] {
        let got = app.put(path, &viewer, json!({"mode": "off"})).await;
        assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    }
    assert_eq!(
        app.get(org_policy, &owner.access).await.1["mode"],
        "semantic"
    );
}

async fn budgets_are_set_per_scope_reach_the_key_and_stay_in_their_organization(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("budget-owner@example.com", "Budgets Inc").await;
    let other = app.signup("budget-other@example.com", "Elsewhere").await;

    // one budget per scope; a team is named by id or name, a key by id
    let specs = [
        json!({"scope": "organization", "period": "monthly", "limit_usd": "100.00"}),
        json!({"scope": "team", "target": owner.team_id, "period": "daily", "limit_usd": 5}),
        json!({"scope": "key", "target": owner.key_id, "period": "lifetime", "limit_usd": "1.5", "thresholds": [90, 25]}),
        json!({"scope": "user", "target": "*", "period": "weekly", "limit_usd": "0.25"}),
        json!({"scope": "user", "target": "alice", "period": "weekly", "limit_usd": "2"}),
    ];
    let mut ids = Vec::new();
    for spec in &specs {
        let (status, body) = app.post("/auth/budgets", &owner.access, spec.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{spec}: {body}");
        ids.push(text(&body["id"]));
    }
    let (status, body) = app.get("/auth/budgets", &owner.access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 5);
    assert_eq!(body["data"][2]["thresholds"], json!([25, 90]));
    assert_eq!(body["data"][0]["limit_usd"], "100.00");

    // the key's context carries every budget that applies to it, with its label
    let ctx = app.verify(&owner.key).await.unwrap();
    let labels: Vec<&str> = ctx.budgets.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(ctx.budgets.len(), 5, "{labels:?}");
    assert!(
        labels.contains(&"the organization's monthly budget"),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("team \"") && l.ends_with("daily budget")),
        "{labels:?}"
    );
    // a key in another team does not get the team's budget
    let team = new_team(&app, &owner.access, "elsewhere-team").await;
    let (_, secret) = new_key(&app, &owner.access, json!({"team_id": team})).await;
    assert_eq!(app.verify(&secret).await.unwrap().budgets.len(), 3);

    // one budget per scope, target and period; bad values name their field
    let got = app
        .post("/auth/budgets", &owner.access, specs[0].clone())
        .await;
    assert_error(&got, StatusCode::CONFLICT, "invalid_request_error");
    for (spec, param) in [
        (
            json!({"scope": "planet", "period": "daily", "limit_usd": 1}),
            "scope",
        ),
        (
            json!({"scope": "organization", "period": "hourly", "limit_usd": 1}),
            "period",
        ),
        (
            json!({"scope": "organization", "period": "daily", "limit_usd": "-1"}),
            "limit_usd",
        ),
        (
            json!({"scope": "organization", "period": "daily", "limit_usd": "lots"}),
            "limit_usd",
        ),
        (
            json!({"scope": "organization", "period": "daily", "limit_usd": "2000000"}),
            "limit_usd",
        ),
        (
            json!({"scope": "organization", "period": "daily", "limit_usd": 1, "thresholds": [0]}),
            "thresholds",
        ),
        (
            json!({"scope": "user", "period": "daily", "limit_usd": 1}),
            "target",
        ),
    ] {
        let got = app.post("/auth/budgets", &owner.access, spec.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
        assert_eq!(got.1["error"]["param"], param, "{spec}: {}", got.1);
    }

    // changes reach the key at once
    let (status, body) = app
        .patch(
            &format!("/auth/budgets/{}", ids[0]),
            &owner.access,
            json!({"limit_usd": "50"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ctx = app.verify(&owner.key).await.unwrap();
    let org_budget = ctx.budgets.iter().find(|b| b.id == ids[0]).unwrap();
    assert_eq!(org_budget.limit_usd.to_string(), "50");

    // another organization reaches none of them, and cannot aim at my team or key
    assert_eq!(
        app.get("/auth/budgets", &other.access).await.1["data"],
        json!([])
    );
    for id in &ids {
        let path = format!("/auth/budgets/{id}");
        let got = app
            .patch(&path, &other.access, json!({"limit_usd": 1}))
            .await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
        let got = app.delete(&path, &other.access).await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
    }
    for spec in [
        json!({"scope": "team", "target": owner.team_id, "period": "daily", "limit_usd": 1}),
        json!({"scope": "key", "target": owner.key_id, "period": "daily", "limit_usd": 1}),
    ] {
        let got = app.post("/auth/budgets", &other.access, spec).await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found_error");
    }

    // viewers read; members change no budget; admins do
    let (_, viewer) = join(&app, &owner, "budget-viewer@example.com", Role::Viewer).await;
    assert_eq!(app.get("/auth/budgets", &viewer).await.0, StatusCode::OK);
    let (_, member) = join(&app, &owner, "budget-member@example.com", Role::Member).await;
    for token in [&viewer, &member] {
        let got = app
            .post(
                "/auth/budgets",
                token,
                json!({"scope": "organization", "period": "weekly", "limit_usd": 1}),
            )
            .await;
        assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
        let got = app
            .delete(&format!("/auth/budgets/{}", ids[1]), token)
            .await;
        assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    }
    let (_, admin) = join(&app, &owner, "budget-admin@example.com", Role::Admin).await;
    let (status, _) = app
        .delete(&format!("/auth/budgets/{}", ids[1]), &admin)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.verify(&owner.key).await.unwrap().budgets.len(), 4);
}

async fn alert_webhooks_are_admin_only_and_show_their_secret_once(db: Db) {
    let app = TestApp::start(db).await;
    let owner = app.signup("hook-owner@example.com", "Hooks Inc").await;
    let other = app.signup("hook-other@example.com", "Elsewhere").await;
    assert_eq!(
        app.get("/auth/alerts/webhook", &owner.access).await.1,
        json!({"url": null})
    );
    let (status, body) = app
        .put(
            "/auth/alerts/webhook",
            &owner.access,
            json!({"url": "https://hooks.example.com/tollgate"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(text(&body["secret"]).starts_with("whsec_"));
    assert_eq!(
        app.get("/auth/alerts/webhook", &owner.access).await.1,
        json!({"url": "https://hooks.example.com/tollgate"}),
        "the secret is shown only once"
    );
    // the secret never reaches the audit log
    let (_, audit) = app.get("/auth/audit", &owner.access).await;
    assert!(!audit.to_string().contains(&text(&body["secret"])));
    for url in ["ftp://x", "not a url", "http://"] {
        let got = app
            .put("/auth/alerts/webhook", &owner.access, json!({"url": url}))
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request_error");
        assert_eq!(got.1["error"]["param"], "url");
    }
    let (_, viewer) = join(&app, &owner, "hook-viewer@example.com", Role::Viewer).await;
    let got = app
        .put("/auth/alerts/webhook", &viewer, json!({"url": null}))
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "permission_error");
    // each organization has its own
    assert_eq!(
        app.get("/auth/alerts/webhook", &other.access).await.1,
        json!({"url": null})
    );
    let (status, _) = app
        .put("/auth/alerts/webhook", &owner.access, json!({"url": null}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.get("/auth/alerts/webhook", &owner.access).await.1,
        json!({"url": null})
    );
}
