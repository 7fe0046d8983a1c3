// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

//! Accounts and sessions under attack, through the REST API: bursts of password guesses,
//! lockouts from elsewhere, forged client addresses, sessions that outlive their welcome,
//! stolen sessions after a password change, probing sign-ups for known addresses, and the
//! generated JWT signing key read from a copy of the database.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::{Method, StatusCode};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::join_all;
use serde_json::{Value, json};
use sqlx::Row;
use tollgate_auth::mailer::{Mail, MailError, Mailer};
use tollgate_auth::seal::SecretSeal;
use tollgate_auth::sessions::{StoredSigningSecret, open_signing_secret};
use tollgate_common::Secret;
use tollgate_common::config::{Config, LoginThrottleConfig};

use common::on_both_databases;
use common::{Db, PASSWORD, TestApp, assert_error, fresh_database, peer, request, text};

on_both_databases!(
    sessions_end_a_fixed_time_after_login_however_often_refreshed,
    changing_the_password_ends_every_other_session,
    signup_answers_alike_whether_or_not_the_address_has_an_account,
    the_generated_signing_key_is_encrypted_in_the_database,
    a_plain_signing_key_is_sealed_at_start_up_and_keeps_its_sessions,
);

const WRONG_PASSWORD: &str = "not the password at all";

fn limits(
    per_email_per_client: u32,
    per_ip: u32,
    per_email: u32,
) -> impl FnOnce(&mut Config) + Clone {
    move |config: &mut Config| {
        config.auth.login_throttle = LoginThrottleConfig {
            per_email_per_client,
            per_ip,
            per_email,
            window_secs: 60,
        };
    }
}

fn login_request(email: &str, password: &str) -> actix_web::test::TestRequest {
    request(
        Method::POST,
        "/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> StatusCode {
    app.send(login_request(email, password).peer_addr(peer(ip)))
        .await
        .status()
}

/// A login through a proxy at `proxy` that says the client is `forwarded_for`.
async fn login_via(
    app: &TestApp,
    proxy: &str,
    forwarded_for: &str,
    email: &str,
    password: &str,
) -> StatusCode {
    app.send(
        login_request(email, password)
            .peer_addr(peer(proxy))
            .insert_header(("x-forwarded-for", forwarded_for)),
    )
    .await
    .status()
}

// ---- guessing passwords ----

/// 50 wrong passwords at once from one client, against a limit of 10 per account and client:
/// each is counted before its password is checked, so no more than 10 are checked.
async fn a_burst_of_guesses_gets_no_more_than_the_limit(app: TestApp) {
    let victim = app
        .signup(
            &format!("burst-{}@example.com", uuid::Uuid::now_v7()),
            "Burst",
        )
        .await;
    let guesses = (0..50).map(|i| {
        app.send(
            login_request(&victim.email, &format!("{WRONG_PASSWORD} {i}"))
                .peer_addr(peer("203.0.113.66")),
        )
    });
    let answers: Vec<ServiceResponse> = join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|r| r.status() != StatusCode::TOO_MANY_REQUESTS)
        .count();
    let refused = answers
        .iter()
        .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!((checked, refused), (10, 10));
    // The limit is on guesses from that client: the owner elsewhere still logs in.
    assert_eq!(
        login_from(&app, "198.51.100.5", &victim.email, PASSWORD).await,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn a_burst_of_guesses_gets_no_more_than_the_limit_in_process() {
    let app = TestApp::start_with(Db::Sqlite, limits(10, 100, 1000)).await;
    a_burst_of_guesses_gets_no_more_than_the_limit(app).await;
}

#[actix_web::test]
async fn a_burst_of_guesses_gets_no_more_than_the_limit_with_redis() {
    let app = TestApp::start_with(Db::Sqlite, |config| {
        limits(10, 100, 1000)(config);
        config.redis.url = Some("redis://127.0.0.1:6379".into());
    })
    .await;
    a_burst_of_guesses_gets_no_more_than_the_limit(app).await;
}

#[actix_web::test]
async fn failures_elsewhere_cannot_lock_the_owner_out_but_a_ceiling_holds() {
    let app = TestApp::start_with(Db::Sqlite, limits(3, 100, 8)).await;
    let victim = app.signup("victim@example.com", "Victim's").await;
    for _ in 0..3 {
        let status = login_from(&app, "203.0.113.7", &victim.email, WRONG_PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The guesser is stopped, even with the right password...
    assert_eq!(
        login_from(&app, "203.0.113.7", &victim.email, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...the owner is not, from their own address.
    assert_eq!(
        login_from(&app, "198.51.100.20", &victim.email, PASSWORD).await,
        StatusCode::OK
    );
    // Guessing from many addresses meets the account's ceiling over all clients (8): three
    // failures above, five more from five other clients.
    for i in 1..=5 {
        let status = login_from(&app, &format!("192.0.2.{i}"), &victim.email, WRONG_PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_from(&app, "192.0.2.200", &victim.email, WRONG_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[actix_web::test]
async fn ipv6_clients_are_counted_by_their_64() {
    let app = TestApp::start_with(Db::Sqlite, limits(100, 3, 1000)).await;
    let user = app.signup("six@example.com", "Six's").await;
    // Three failures from three addresses of one /64, on three accounts...
    for i in 1..=3 {
        let status = login_from(
            &app,
            &format!("2001:db8:1:2::{i}"),
            &format!("nobody{i}@example.com"),
            WRONG_PASSWORD,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // ...use up the allowance of the whole /64, whatever address comes next...
    assert_eq!(
        login_from(
            &app,
            "2001:db8:1:2:ffff:ffff:ffff:fffe",
            &user.email,
            PASSWORD
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and of no other /64.
    assert_eq!(
        login_from(&app, "2001:db8:1:3::1", &user.email, PASSWORD).await,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let app = TestApp::start_with(Db::Sqlite, |config| {
        limits(100, 3, 1000)(config);
        config.auth.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let user = app.signup("proxied@example.com", "Proxied").await;
    // Behind the trusted proxy each client is counted by the address the proxy forwarded,
    // not by whatever the client wrote to the left of it.
    for i in 1..=3 {
        let forwarded = format!("198.51.100.{i}, 203.0.113.50");
        let status = login_via(
            &app,
            "10.0.0.5",
            &forwarded,
            &format!("nobody{i}@example.com"),
            WRONG_PASSWORD,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_via(&app, "10.0.0.5", "203.0.113.50", &user.email, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not affected.
    assert_eq!(
        login_via(&app, "10.0.0.5", "203.0.113.51", &user.email, PASSWORD).await,
        StatusCode::OK
    );
    // From a peer that is not a trusted proxy, the header is the client's own invention: a
    // new value for each attempt does not give it more.
    for i in 1..=3 {
        let status = login_via(
            &app,
            "198.51.100.77",
            &format!("192.0.2.{i}"),
            &format!("nobody{i}@example.com"),
            WRONG_PASSWORD,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_via(&app, "198.51.100.77", "192.0.2.99", &user.email, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ---- sessions ----

async fn sessions_end_a_fixed_time_after_login_however_often_refreshed(db: Db) {
    let app = TestApp::start_with(db, |config| {
        config.auth.session_max_lifetime_secs = 2;
    })
    .await;
    let t = app.signup("lifetime@example.com", "Lifetime").await;
    // Rotation keeps working within the session's lifetime...
    let mut refresh_token = t.refresh.clone();
    let mut access_token = t.access.clone();
    for _ in 0..3 {
        let (status, pair) = app.refresh(&refresh_token).await;
        assert_eq!(status, StatusCode::OK, "{pair}");
        refresh_token = text(&pair["refresh_token"]);
        access_token = text(&pair["access_token"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(app.get("/auth/me", &access_token).await.0, StatusCode::OK);
    // ...but does not extend it: two seconds after login the session is over, although each
    // refresh token was issued for 30 days.
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let got = app.refresh(&refresh_token).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_request_error");
    assert_eq!(got.1["error"]["code"], "invalid_refresh_token");
    assert_eq!(
        app.get("/auth/me", &access_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A new login starts a new session.
    let fresh = app.access_token(&t.email, None).await;
    assert_eq!(app.get("/auth/me", &fresh).await.0, StatusCode::OK);
}

async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> (StatusCode, Value) {
    app.post(
        "/auth/password",
        token,
        json!({"current_password": current, "new_password": new}),
    )
    .await
}

async fn changing_the_password_ends_every_other_session(db: Db) {
    let app = TestApp::start(db).await;
    let t = app.signup("changer@example.com", "Changer").await;
    // Another session, as a thief holding it would have.
    let (status, stolen) = app.login(&t.email, None).await;
    assert_eq!(status, StatusCode::OK);
    let (stolen_access, stolen_refresh) = (
        text(&stolen["access_token"]),
        text(&stolen["refresh_token"]),
    );
    let new_password = "a different long passphrase";

    // Refusals change nothing.
    let no_token = app
        .call(
            Method::POST,
            "/auth/password",
            None,
            Some(json!({"current_password": PASSWORD, "new_password": new_password})),
        )
        .await;
    assert_error(&no_token, StatusCode::UNAUTHORIZED, "invalid_request_error");
    let wrong = change_password(&app, &t.access, WRONG_PASSWORD, new_password).await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "invalid_request_error");
    assert_eq!(wrong.1["error"]["param"], "current_password");
    let weak = change_password(&app, &t.access, PASSWORD, "short").await;
    assert_error(&weak, StatusCode::BAD_REQUEST, "invalid_request_error");
    assert_eq!(weak.1["error"]["param"], "new_password");
    let (status, admin) = app
        .post(
            "/auth/admin-tokens",
            &t.access,
            json!({"name": "ci", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{admin}");
    let by_script = change_password(&app, &text(&admin["secret"]), PASSWORD, new_password).await;
    assert_error(&by_script, StatusCode::FORBIDDEN, "permission_error");
    assert_eq!(app.get("/auth/me", &stolen_access).await.0, StatusCode::OK);

    let (status, body) = change_password(&app, &t.access, PASSWORD, new_password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"other_sessions_ended": 1}));

    // The other session is over, its access and refresh tokens both...
    assert_eq!(
        app.get("/auth/me", &stolen_access).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&stolen_refresh).await.0,
        StatusCode::UNAUTHORIZED
    );
    // ...the one that changed the password goes on...
    assert_eq!(app.get("/auth/me", &t.access).await.0, StatusCode::OK);
    let (status, _) = app.refresh(&t.refresh).await;
    assert_eq!(status, StatusCode::OK);
    // ...and only the new password logs in.
    let old = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": t.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(old.0, StatusCode::UNAUTHORIZED);
    let new = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": t.email, "password": new_password})),
        )
        .await;
    assert_eq!(new.0, StatusCode::OK);

    // The change is in the audit log, without the password.
    let (status, audit) = app.get("/auth/audit", &t.access).await;
    assert_eq!(status, StatusCode::OK);
    let entry = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.password_change")
        .unwrap_or_else(|| panic!("no password change in {audit}"));
    assert_eq!(entry["target_id"], t.user_id.as_str());
    assert_eq!(entry["actor"], format!("user:{}", t.user_id));
    assert!(!audit.to_string().contains(new_password));
}

// ---- sign-up ----

/// Keeps every message instead of sending it.
#[derive(Default)]
struct Outbox {
    sent: Mutex<Vec<Mail>>,
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        self.sent.lock().unwrap().push(mail);
        Ok(())
    }
}

impl Outbox {
    /// The messages sent to `to`, waiting a little for those sent in the background.
    async fn to(&self, to: &str, count: usize) -> Vec<Mail> {
        for _ in 0..100 {
            let sent: Vec<Mail> = self
                .sent
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.to == to)
                .cloned()
                .collect();
            if sent.len() >= count {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {count} messages to {to}");
    }
}

/// The JSON shape of a value: its keys and the types of their values, recursively.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

async fn signup_answers_alike_whether_or_not_the_address_has_an_account(db: Db) {
    let outbox = Arc::new(Outbox::default());
    let app = TestApp::start_with_mailer(
        db,
        |config| {
            // Verification is on by default once mail can be sent.
            config.auth.mailer = Some(tollgate_common::config::MailerConfig::Log);
            config.auth.public_url = Some("https://tollgate.example.com/".into());
        },
        Some(outbox.clone()),
    )
    .await;
    let existing = "owner@example.com";
    app.store()
        .signup(
            existing,
            &tollgate_auth::secrets::PasswordHashing::default()
                .hash(PASSWORD)
                .unwrap(),
            "Owner's",
            Default::default(),
        )
        .await
        .unwrap();
    let attempt = |email: &str| {
        request(
            Method::POST,
            "/auth/signup",
            None,
            Some(json!({"email": email, "password": "an attacker's passphrase", "organization": "Probe"})),
        )
        .peer_addr(peer("203.0.113.9"))
    };
    let (known_status, known) = app.send_json(attempt(existing)).await;
    let (fresh_status, fresh) = app.send_json(attempt("newcomer@example.com")).await;
    // The same status and the same shape; only the address echoed differs.
    assert_eq!(known_status, StatusCode::ACCEPTED, "{known}");
    assert_eq!(fresh_status, known_status, "{fresh}");
    assert_eq!(shape(&known), shape(&fresh));
    assert_eq!(
        known,
        json!({"status": "verification_sent", "email": existing})
    );
    assert_eq!(fresh["email"], "newcomer@example.com");

    // The owner is told, and nothing about their account changed.
    let notice = outbox.to(existing, 1).await;
    assert!(notice[0].text.contains("already has one"), "{notice:?}");
    assert!(
        notice[0]
            .text
            .contains("https://tollgate.example.com/#/login")
    );
    assert!(
        !notice[0].text.contains("Probe"),
        "the requester's text is not mailed"
    );
    let kept = app.login(existing, None).await;
    assert_eq!(kept.0, StatusCode::OK, "{}", kept.1);
    let taken = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": existing, "password": "an attacker's passphrase"})),
        )
        .await;
    assert_eq!(taken.0, StatusCode::UNAUTHORIZED);

    // The new address gets a link; until it is followed there is no account.
    let confirmation = outbox.to("newcomer@example.com", 1).await;
    let link_prefix = "https://tollgate.example.com/#/verify/";
    let token = confirmation[0]
        .text
        .split_whitespace()
        .find_map(|word| word.strip_prefix(link_prefix))
        .unwrap_or_else(|| panic!("no link in {confirmation:?}"))
        .to_owned();
    let before = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "newcomer@example.com", "password": "an attacker's passphrase"})),
        )
        .await;
    assert_eq!(before.0, StatusCode::UNAUTHORIZED);
    let verify = |token: &str| {
        app.call(
            Method::POST,
            "/auth/signup/verify",
            None,
            Some(json!({"token": token})),
        )
    };
    let (status, created) = verify(&token).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(text(&created["api_key"]["key"]).starts_with("tg-"));
    assert_eq!(created["organization"]["name"], "Probe");
    let access = text(&created["access_token"]);
    assert_eq!(app.get("/auth/me", &access).await.0, StatusCode::OK);
    assert!(app.verifies(&text(&created["api_key"]["key"])).await);
    // A link works once, and a made-up one not at all.
    let again = verify(&token).await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found_error");
    assert_eq!(verify("made-up").await.0, StatusCode::NOT_FOUND);
}

// ---- the generated signing key ----

fn encryption_key(byte: u8) -> Secret {
    Secret::new(STANDARD.encode([byte; 32]))
}

async fn stored_signing_secret(app: &TestApp) -> (String, String) {
    let row = sqlx::query("SELECT kid, secret FROM signing_keys")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    (row.try_get("kid").unwrap(), row.try_get("secret").unwrap())
}

/// Whether `token` is signed with `secret`.
fn signed_with(token: &str, secret: &[u8]) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["tollgate"]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret),
        &validation,
    )
    .is_ok()
}

/// A configuration without signing keys (so that one is generated), on `database`.
fn generated_key_on(database: &str, key: Option<Secret>) -> impl FnOnce(&mut Config) {
    let database = database.to_owned();
    move |config: &mut Config| {
        config.storage.database_url = Some(database);
        config.auth.signing_keys.clear();
        config.auth.encryption_key = key;
    }
}

async fn the_generated_signing_key_is_encrypted_in_the_database(db: Db) {
    let database = fresh_database(db).await;
    let app = TestApp::start_with(db, generated_key_on(&database, Some(encryption_key(1)))).await;
    let t = app.signup("sealed@example.com", "Sealed").await;
    let (kid, stored) = stored_signing_secret(&app).await;
    let StoredSigningSecret::Sealed(sealed) = StoredSigningSecret::parse(&stored) else {
        panic!("the signing key is stored in the clear: {stored}");
    };
    let seal = SecretSeal::new(&encryption_key(1)).unwrap();
    let secret = open_signing_secret(&seal, &kid, sealed).unwrap();
    // What is stored is not the secret, nor does it contain it; the secret is what signs.
    assert!(!stored.contains(std::str::from_utf8(&secret).unwrap()));
    assert!(!signed_with(&t.access, stored.as_bytes()));
    assert!(signed_with(&t.access, &secret));
    // Another key does not open it, and a restart with the same key keeps the sessions.
    let other = SecretSeal::new(&encryption_key(2)).unwrap();
    assert!(open_signing_secret(&other, &kid, sealed).is_err());
    let restarted =
        TestApp::start_with(db, generated_key_on(&database, Some(encryption_key(1)))).await;
    assert_eq!(restarted.get("/auth/me", &t.access).await.0, StatusCode::OK);
    assert_eq!(stored_signing_secret(&restarted).await.1, stored);
}

async fn a_plain_signing_key_is_sealed_at_start_up_and_keeps_its_sessions(db: Db) {
    let database = fresh_database(db).await;
    let before = TestApp::start_with(db, generated_key_on(&database, None)).await;
    let t = before.signup("plain@example.com", "Plain").await;
    let (_, plain) = stored_signing_secret(&before).await;
    assert!(
        signed_with(&t.access, plain.as_bytes()),
        "stored as is without a key"
    );

    let after = TestApp::start_with(db, generated_key_on(&database, Some(encryption_key(3)))).await;
    let (_, stored) = stored_signing_secret(&after).await;
    assert!(matches!(
        StoredSigningSecret::parse(&stored),
        StoredSigningSecret::Sealed(_)
    ));
    assert!(!stored.contains(&plain));
    // Sealing kept the secret: sessions from before go on.
    assert_eq!(after.get("/auth/me", &t.access).await.0, StatusCode::OK);

    // Without the key (or with another one), the service refuses to start, saying why.
    for key in [None, Some(encryption_key(4))] {
        let mut config = Config::default();
        generated_key_on(&database, key)(&mut config);
        let refused = tollgate_auth::startup::start(&config, true).await;
        let message = refused.err().expect("start-up refused").to_string();
        assert!(message.contains("auth.encryption_key"), "{message}");
    }
}
