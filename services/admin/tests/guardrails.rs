//! Guardrail policies through the admin GraphQL API, on SQLite and PostgreSQL: read and set at
//! each level as JSON, refused naming the field at fault, kept to the roles that may change
//! them and to their organization, carried in the key's context; and the preview of a policy
//! on a sample prompt.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]
// A scenario's future holds the app's start-up, whose resolvers nest deeper than the default
// limit lets the compiler lay out.
#![recursion_limit = "256"]

mod common;

use actix_web::test as web_test;
use serde_json::{Value, json};
use tollgate_admin::http::AdminSettings;
use tollgate_auth::store::scratch;
use tollgate_auth::{KeyVerifier, Role};

use common::{AdminApp, add_member, call_json, start_admin_app};

#[path = "../../auth/tests/common/databases.rs"]
mod databases;

use databases::{Db, on_both_databases};

on_both_databases!(
    policies_are_read_and_set_at_each_level_within_the_organization,
    the_preview_shows_what_a_policy_does_to_a_prompt,
);

const PASSWORD: &str = "a long enough passphrase";

const GET: &str = "query($l: PolicyLevelInput!) { guardrailPolicy(level: $l) }";
const SET: &str =
    "mutation($l: PolicyLevelInput!, $p: JSON!) { setGuardrailPolicy(level: $l, policy: $p) }";
const PREVIEW: &str = "query($p: JSON!, $s: String!) { guardrailPreview(policy: $p, prompt: $s) { text blockedBy actions } }";

struct Tenant {
    org: String,
    access: String,
    team: String,
    key: String,
    secret: String,
}

async fn start(db: Db) -> AdminApp {
    let database_url = match db {
        Db::Sqlite => scratch::sqlite_url(),
        Db::Postgres => scratch::postgres_url().await.unwrap(),
    };
    let billing = tollgate_admin::billing::BillingSetup {
        config: Default::default(),
        stripe: None,
    };
    start_admin_app(database_url, billing, &AdminSettings::default()).await
}

async fn signup(app: &AdminApp, email: &str) -> Tenant {
    let body = call_json(
        &app.call,
        web_test::TestRequest::post()
            .uri("/auth/signup")
            .set_json(json!({"email": email, "password": PASSWORD, "organization": email})),
    )
    .await;
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    Tenant {
        org: text(&body["organization"]["id"]),
        access: text(&body["access_token"]),
        team: text(&body["team"]["id"]),
        key: text(&body["api_key"]["id"]),
        secret: text(&body["api_key"]["key"]),
    }
}

async fn join(app: &AdminApp, tenant: &Tenant, email: &str, role: Role) -> String {
    let user = call_json(
        &app.call,
        web_test::TestRequest::post()
            .uri("/auth/signup")
            .set_json(json!({"email": email, "password": PASSWORD, "organization": email})),
    )
    .await;
    add_member(
        &app.runtime,
        &tenant.org,
        user["user"]["id"].as_str().unwrap(),
        role,
    )
    .await;
    let body = call_json(
        &app.call,
        web_test::TestRequest::post()
            .uri("/auth/login")
            .set_json(json!({"email": email, "password": PASSWORD, "organization_id": tenant.org})),
    )
    .await;
    body["access_token"].as_str().unwrap().to_owned()
}

async fn gql(app: &AdminApp, token: &str, query: &str, variables: Value) -> Value {
    let req = web_test::TestRequest::post()
        .uri("/graphql")
        .insert_header(("authorization", format!("Bearer {token}")))
        .set_json(json!({"query": query, "variables": variables}));
    call_json(&app.call, req).await
}

fn code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

fn field(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["field"].as_str()
}

fn ok(answer: &Value) -> &Value {
    assert!(answer.get("errors").is_none(), "{answer}");
    &answer["data"]
}

async fn policies_are_read_and_set_at_each_level_within_the_organization(db: Db) {
    let app = start(db).await;
    let owner = signup(&app, "grq-owner@example.com").await;
    let other = signup(&app, "grq-other@example.com").await;
    let levels = [
        json!({}),
        json!({"teamId": owner.team}),
        json!({"keyId": owner.key}),
    ];
    let policy = json!({"input": {"pii": {"email": "redact"}, "deny_regex": ["(?i)confidential"]}});

    for level in &levels {
        let got = gql(&app, &owner.access, GET, json!({"l": level})).await;
        assert_eq!(ok(&got)["guardrailPolicy"], json!({}), "{level}");
        let set = gql(&app, &owner.access, SET, json!({"l": level, "p": policy})).await;
        assert_eq!(ok(&set)["setGuardrailPolicy"], policy, "{level}");
        let got = gql(&app, &owner.access, GET, json!({"l": level})).await;
        assert_eq!(ok(&got)["guardrailPolicy"], policy, "{level}");
    }
    let context = app.runtime.keys.verify(&owner.secret).await.unwrap();
    let names: Vec<&str> = context
        .guardrails
        .levels
        .iter()
        .map(|level| level.name.as_str())
        .collect();
    assert_eq!(names, ["organization", "team", "key"]);

    // refused, naming the field: the service's validation, and documents that are not policies
    for (bad, expected) in [
        (
            json!({"input": {"deny_regex": ["(unclosed"]}}),
            "input.deny_regex[0]",
        ),
        (json!({"input": {"pii": {"passport": "redact"}}}), "policy"),
        (json!({"colour": "blue"}), "policy"),
        (json!("redact everything"), "policy"),
        (
            json!({"input": {"deny_keywords": vec!["y".repeat(400); 100]}}),
            "policy",
        ),
        (
            json!({"webhook": {"url": "http://10.1.2.3/"}}),
            "webhook.url",
        ),
    ] {
        let got = gql(&app, &owner.access, SET, json!({"l": {}, "p": bad})).await;
        assert_eq!(code(&got), Some("BAD_USER_INPUT"), "{bad}: {got}");
        assert_eq!(field(&got), Some(expected), "{bad}: {got}");
    }
    let got = gql(
        &app,
        &owner.access,
        GET,
        json!({"l": {"teamId": owner.team, "keyId": owner.key}}),
    )
    .await;
    assert_eq!(code(&got), Some("BAD_USER_INPUT"));

    // a member who is no team admin reads but changes neither the organization's nor the
    // team's policy
    let member = join(&app, &owner, "grq-member@example.com", Role::Member).await;
    for level in &levels {
        let got = gql(&app, &member, GET, json!({"l": level})).await;
        assert_eq!(ok(&got)["guardrailPolicy"], policy);
        let got = gql(&app, &member, SET, json!({"l": level, "p": {}})).await;
        assert_eq!(code(&got), Some("FORBIDDEN"), "{level}: {got}");
    }

    // another organization reaches neither my team's nor my key's policy
    for level in &levels[1..] {
        let got = gql(&app, &other.access, GET, json!({"l": level})).await;
        assert_eq!(code(&got), Some("NOT_FOUND"), "{level}: {got}");
        let got = gql(&app, &other.access, SET, json!({"l": level, "p": {}})).await;
        assert_eq!(code(&got), Some("NOT_FOUND"), "{level}: {got}");
    }
    let got = gql(&app, &other.access, GET, json!({"l": {}})).await;
    assert_eq!(ok(&got)["guardrailPolicy"], json!({}));
    let got = gql(&app, &owner.access, GET, json!({"l": levels[1]})).await;
    assert_eq!(ok(&got)["guardrailPolicy"], policy);
}

async fn the_preview_shows_what_a_policy_does_to_a_prompt(db: Db) {
    let app = start(db).await;
    let owner = signup(&app, "grp-owner@example.com").await;
    let viewer = join(&app, &owner, "grp-viewer@example.com", Role::Viewer).await;
    let policy = json!({"input": {"pii": {"email": "redact", "credit_card": "block"}}});
    let prompt = "Write to jane@example.com about card 4111 1111 1111 1111.";

    // any member may try a policy; the answer has the text the provider would get, the rule
    // that would refuse it and what each rule did
    for token in [&owner.access, &viewer] {
        let got = gql(&app, token, PREVIEW, json!({"p": policy, "s": prompt})).await;
        let preview = &ok(&got)["guardrailPreview"];
        assert_eq!(preview["blockedBy"], "policy/input.pii", "{preview}");
        assert_eq!(
            preview["text"], prompt,
            "a refused prompt is shown as written"
        );
        assert_eq!(preview["actions"][0]["taken"], "redacted", "{preview}");
        assert_eq!(
            preview["actions"][0]["entities"],
            json!(["email"]),
            "{preview}"
        );
        assert_eq!(preview["actions"][1]["taken"], "blocked", "{preview}");
    }
    // without the card, the e-mail is redacted and nothing refuses it
    let got = gql(
        &app,
        &owner.access,
        PREVIEW,
        json!({"p": policy, "s": "Write to jane@example.com today."}),
    )
    .await;
    let preview = &ok(&got)["guardrailPreview"];
    assert_eq!(preview["text"], "Write to <EMAIL_1> today.", "{preview}");
    assert!(preview["blockedBy"].is_null(), "{preview}");

    // nothing about it is stored
    let got = gql(&app, &owner.access, GET, json!({"l": {}})).await;
    assert_eq!(ok(&got)["guardrailPolicy"], json!({}));

    // refused: a policy that would be, a prompt too long, no caller
    for (variables, expected) in [
        (
            json!({"p": {"input": {"deny_regex": ["(unclosed"]}}, "s": "hi"}),
            "input.deny_regex[0]",
        ),
        (json!({"p": {"inputs": {}}, "s": "hi"}), "policy"),
        (json!({"p": {}, "s": "x".repeat(32 * 1024 + 1)}), "prompt"),
    ] {
        let got = gql(&app, &owner.access, PREVIEW, variables).await;
        assert_eq!(code(&got), Some("BAD_USER_INPUT"), "{got}");
        assert_eq!(field(&got), Some(expected), "{got}");
    }
    let got = gql(&app, "nonsense", PREVIEW, json!({"p": {}, "s": "hi"})).await;
    assert_eq!(code(&got), Some("UNAUTHENTICATED"));
}
