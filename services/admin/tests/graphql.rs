//! The admin GraphQL API through its HTTP endpoint, on SQLite and PostgreSQL: every query and
//! mutation as the roles allowed and refused, another organization's ids always not found,
//! error codes, depth and complexity limits, and the committed schema.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]
// A scenario's future holds the app's start-up, whose resolvers nest deeper than the default
// limit lets the compiler lay out.
#![recursion_limit = "256"]

mod common;

use actix_web::test as web_test;
use serde_json::{Value, json};
use tollgate_admin::http::AdminSettings;
use tollgate_auth::Role;
use tollgate_auth::store::scratch;
use tollgate_common::Secret;

use common::{AdminApp, Call, add_member, call_json, send_graphql, start_admin_app};

struct Admin {
    call: Call,
    runtime: tollgate_auth::AuthRuntime,
    budgets: std::sync::Arc<tollgate_billing::BudgetCounters>,
}

const PASSWORD: &str = "a long enough passphrase";

impl Admin {
    async fn start(db: Db) -> Admin {
        Admin::start_with(
            db,
            tollgate_admin::billing::BillingSetup {
                config: Default::default(),
                stripe: None,
            },
        )
        .await
    }

    async fn start_with(db: Db, billing: tollgate_admin::billing::BillingSetup) -> Admin {
        Admin::start_full(db, billing, AdminSettings::default()).await
    }

    async fn start_settings(db: Db, settings: AdminSettings) -> Admin {
        let billing = tollgate_admin::billing::BillingSetup {
            config: Default::default(),
            stripe: None,
        };
        Admin::start_full(db, billing, settings).await
    }

    async fn start_full(
        db: Db,
        billing: tollgate_admin::billing::BillingSetup,
        settings: AdminSettings,
    ) -> Admin {
        let database_url = match db {
            Db::Sqlite => scratch::sqlite_url(),
            Db::Postgres => scratch::postgres_url().await.unwrap(),
        };
        let AdminApp {
            call,
            runtime,
            budgets,
        } = start_admin_app(database_url, billing, &settings).await;
        Admin {
            call,
            runtime,
            budgets,
        }
    }

    async fn json(&self, req: web_test::TestRequest) -> Value {
        call_json(&self.call, req).await
    }

    /// Signs up; returns (user id, org id, access token).
    async fn signup(&self, email: &str) -> (String, String, String) {
        let body = self
            .json(
                web_test::TestRequest::post()
                    .uri("/auth/signup")
                    .set_json(json!({"email": email, "password": PASSWORD, "organization": email})),
            )
            .await;
        (
            body["user"]["id"].as_str().unwrap().to_owned(),
            body["organization"]["id"].as_str().unwrap().to_owned(),
            body["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// A new user with `role` in `org`, logged into it.
    async fn join(&self, org: &str, email: &str, role: Role) -> String {
        let (user, _, _) = self.signup(email).await;
        add_member(&self.runtime, org, &user, role).await;
        let body = self
            .json(
                web_test::TestRequest::post().uri("/auth/login").set_json(
                    json!({"email": email, "password": PASSWORD, "organization_id": org}),
                ),
            )
            .await;
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Runs a GraphQL document as `token`'s user.
    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = web_test::TestRequest::post()
            .uri("/graphql")
            .set_json(json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            req = req.insert_header(("authorization", format!("Bearer {token}")));
        }
        self.json(req).await
    }

    /// Sends `body` to `/graphql` as it is; the status and the JSON answer.
    async fn raw(&self, method: &str, body: Vec<u8>, token: Option<&str>) -> (u16, Value) {
        let request = match method {
            "GET" => web_test::TestRequest::get(),
            _ => web_test::TestRequest::post(),
        };
        let (status, answer) = send_graphql(&self.call, request, body, token).await;
        (status, answer.unwrap_or_else(Value::String))
    }
}

/// The first error's code, or `None` when the document succeeded.
fn code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

fn ok(answer: &Value) -> &Value {
    assert!(answer.get("errors").is_none(), "{answer}");
    &answer["data"]
}

async fn everything_is_scoped_to_the_callers_organization_and_role(db: Db) {
    let admin = Admin::start(db).await;
    let (_, org, owner) = admin.signup("gql-owner@example.com").await;
    let (_, _, stranger) = admin.signup("gql-stranger@example.com").await;

    // no token, a bad token: UNAUTHENTICATED
    let answer = admin.gql(None, "{ teams { id } }", json!({})).await;
    assert_eq!(code(&answer), Some("UNAUTHENTICATED"));
    let answer = admin
        .gql(Some("nonsense"), "{ teams { id } }", json!({}))
        .await;
    assert_eq!(code(&answer), Some("UNAUTHENTICATED"));

    // the owner reads and manages everything
    let data = ok(&admin
        .gql(
            Some(&owner),
            "{ viewer { email role organization { id } } teams { id name } }",
            json!({}),
        )
        .await)
    .clone();
    assert_eq!(data["viewer"]["role"], "OWNER");
    assert_eq!(data["viewer"]["organization"]["id"], org.as_str());
    let first_team = data["teams"][0]["id"].as_str().unwrap().to_owned();

    let team = ok(&admin
        .gql(
            Some(&owner),
            "mutation($n: String!) { createTeam(name: $n) { id name } }",
            json!({"n": "research"}),
        )
        .await)["createTeam"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let issued = ok(&admin
        .gql(
            Some(&owner),
            "mutation($t: ID!) { createKey(input: {name: \"ci\", teamId: $t, rpmLimit: 60, budgetUsd: \"5.00\", budgetPeriod: \"monthly\", tags: [{key: \"feature\", value: \"search\"}]}) { secret key { id name status rpmLimit budgetUsd tags { key value } } } }",
            json!({"t": team}),
        )
        .await)["createKey"]
        .clone();
    assert!(issued["secret"].as_str().unwrap().starts_with("tg-"));
    assert_eq!(issued["key"]["status"], "active");
    assert_eq!(issued["key"]["budgetUsd"], "5.00");
    let key = issued["key"]["id"].as_str().unwrap().to_owned();
    let listed = ok(&admin
        .gql(
            Some(&owner),
            "query($t: ID) { keys(teamId: $t) { id name displayPrefix } }",
            json!({"t": team}),
        )
        .await)["keys"]
        .clone();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        !listed
            .to_string()
            .contains(issued["secret"].as_str().unwrap()),
        "never the secret again"
    );

    let updated = ok(&admin
        .gql(Some(&owner), "mutation($k: ID!) { updateKey(id: $k, input: {name: \"ci-2\", rpmLimit: 30}) { name rpmLimit } }", json!({"k": key}))
        .await)["updateKey"]
        .clone();
    assert_eq!(updated, json!({"name": "ci-2", "rpmLimit": 30}));

    let budget = ok(&admin
        .gql(Some(&owner), "mutation($t: String) { createBudget(input: {scope: \"team\", target: $t, period: \"monthly\", limitUsd: \"25.50\"}) { id limitUsd thresholds period } }", json!({"t": team}))
        .await)["createBudget"]
        .clone();
    assert_eq!(budget["limitUsd"], "25.50");
    assert_eq!(budget["thresholds"], json!([50, 80, 100]));
    let budget_id = budget["id"].as_str().unwrap().to_owned();
    let changed = ok(&admin
        .gql(Some(&owner), "mutation($b: ID!) { updateBudget(id: $b, input: {limitUsd: \"30\", thresholds: [90]}) { limitUsd thresholds } }", json!({"b": budget_id}))
        .await)["updateBudget"]
        .clone();
    assert_eq!(changed["thresholds"], json!([90]));
    assert_eq!(
        ok(&admin
            .gql(Some(&owner), "{ budgets { id } }", json!({}))
            .await)["budgets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let limits = ok(&admin
        .gql(
            Some(&owner),
            "mutation { setOrganizationRateLimits(limits: {rpm: 100, tpm: 5000}) { rpm tpm } }",
            json!({}),
        )
        .await)["setOrganizationRateLimits"]
        .clone();
    assert_eq!(limits, json!({"rpm": 100, "tpm": 5000}));
    assert_eq!(
        ok(&admin
            .gql(
                Some(&owner),
                "{ organizationRateLimits { rpm } }",
                json!({})
            )
            .await)["organizationRateLimits"]["rpm"],
        100
    );
    let team_limits = ok(&admin
        .gql(Some(&owner), "mutation($t: ID!) { setTeamRateLimits(teamId: $t, limits: {rpm: 50}, models: [{model: \"gpt-4o\", limits: {rpm: 5, tpm: 900}}]) { rpm models { model limits { rpm tpm } } } }", json!({"t": team}))
        .await)["setTeamRateLimits"]
        .clone();
    assert_eq!(
        team_limits,
        json!({"rpm": 50, "models": [{"model": "gpt-4o", "limits": {"rpm": 5, "tpm": 900}}]})
    );
    assert_eq!(
        ok(&admin
            .gql(
                Some(&owner),
                "query($t: ID!) { teamRateLimits(teamId: $t) { models { model } } }",
                json!({"t": team})
            )
            .await)["teamRateLimits"]["models"][0]["model"],
        "gpt-4o"
    );

    let policy = ok(&admin
        .gql(Some(&owner), "mutation($t: ID) { setCachePolicy(level: {teamId: $t}, policy: {mode: EXACT, ttlSecs: 60, share: TEAM}) { mode ttlSecs share } }", json!({"t": team}))
        .await)["setCachePolicy"]
        .clone();
    assert_eq!(
        policy,
        json!({"mode": "EXACT", "ttlSecs": 60, "share": "TEAM"})
    );
    assert_eq!(
        ok(&admin
            .gql(
                Some(&owner),
                "query($k: ID) { cachePolicy(level: {keyId: $k}) { mode } }",
                json!({"k": key})
            )
            .await)["cachePolicy"]["mode"],
        Value::Null,
        "a key's own policy, not merged"
    );
    assert_eq!(
        code(&admin.gql(Some(&owner), "query($k: ID, $t: ID) { cachePolicy(level: {keyId: $k, teamId: $t}) { mode } }", json!({"k": key, "t": team})).await),
        Some("BAD_USER_INPUT")
    );

    // the price catalog
    let models = ok(&admin
        .gql(
            Some(&owner),
            "{ models { family model inputPerMillion outputPerMillion } }",
            json!({}),
        )
        .await)["models"]
        .clone();
    let gpt4o = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "gpt-4o")
        .unwrap();
    assert_eq!(gpt4o["family"], "openai");
    assert!(
        gpt4o["inputPerMillion"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );

    // bad input names its field
    let answer = admin
        .gql(Some(&owner), "mutation { createBudget(input: {scope: \"organization\", period: \"monthly\", limitUsd: \"lots\"}) { id } }", json!({}))
        .await;
    assert_eq!(code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["field"], "limit_usd");

    // another organization: every id of this one is not found, for reads and writes alike
    for (document, variables) in [
        ("query($k: ID!) { key(id: $k) { id } }", json!({"k": key})),
        (
            "query($t: ID!) { teamRateLimits(teamId: $t) { rpm } }",
            json!({"t": team}),
        ),
        (
            "query($t: ID) { cachePolicy(level: {teamId: $t}) { mode } }",
            json!({"t": team}),
        ),
        (
            "query($t: ID) { keys(teamId: $t) { id } }",
            json!({"t": team}),
        ),
        (
            "mutation($k: ID!) { updateKey(id: $k, input: {name: \"x\"}) { id } }",
            json!({"k": key}),
        ),
        (
            "mutation($k: ID!) { rotateKey(id: $k) { secret } }",
            json!({"k": key}),
        ),
        (
            "mutation($k: ID!) { revokeKey(id: $k) { id } }",
            json!({"k": key}),
        ),
        (
            "mutation($t: ID!) { renameTeam(id: $t, name: \"mine\") { id } }",
            json!({"t": team}),
        ),
        (
            "mutation($t: ID!) { deleteTeam(id: $t) }",
            json!({"t": team}),
        ),
        (
            "mutation($b: ID!) { updateBudget(id: $b, input: {limitUsd: \"1\"}) { id } }",
            json!({"b": budget_id}),
        ),
        (
            "mutation($b: ID!) { deleteBudget(id: $b) }",
            json!({"b": budget_id}),
        ),
        (
            "mutation($t: ID) { setCachePolicy(level: {teamId: $t}, policy: {mode: OFF}) { mode } }",
            json!({"t": team}),
        ),
        (
            "mutation($k: ID!) { createKey(input: {teamId: $k}) { secret } }",
            json!({"k": first_team}),
        ),
        (
            "mutation($t: String) { createBudget(input: {scope: \"team\", target: $t, period: \"daily\", limitUsd: \"1\"}) { id } }",
            json!({"t": team}),
        ),
    ] {
        let answer = admin.gql(Some(&stranger), document, variables).await;
        assert_eq!(code(&answer), Some("NOT_FOUND"), "{document}: {answer}");
    }
    let theirs = ok(&admin
        .gql(Some(&stranger), "{ budgets { id } keys { id } }", json!({}))
        .await)
    .clone();
    assert_eq!(theirs["budgets"], json!([]));
    assert!(!theirs["keys"].to_string().contains(&key));

    // a viewer reads but changes nothing
    let viewer = admin
        .join(&org, "gql-viewer@example.com", Role::Viewer)
        .await;
    assert_eq!(
        ok(&admin
            .gql(Some(&viewer), "{ teams { id } budgets { id } }", json!({}))
            .await)["teams"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for (document, variables) in [
        ("mutation { createTeam(name: \"mine\") { id } }", json!({})),
        (
            "mutation($k: ID!) { revokeKey(id: $k) { id } }",
            json!({"k": key}),
        ),
        (
            "mutation { setOrganizationRateLimits(limits: {rpm: 1}) { rpm } }",
            json!({}),
        ),
        (
            "mutation($b: ID!) { deleteBudget(id: $b) }",
            json!({"b": budget_id}),
        ),
        (
            "mutation { setCachePolicy(level: {}, policy: {mode: OFF}) { mode } }",
            json!({}),
        ),
    ] {
        let answer = admin.gql(Some(&viewer), document, variables).await;
        assert_eq!(code(&answer), Some("FORBIDDEN"), "{document}: {answer}");
    }

    // the owner rotates and revokes
    let rotated = ok(&admin
        .gql(
            Some(&owner),
            "mutation($k: ID!) { rotateKey(id: $k, graceSeconds: 60) { secret key { id } } }",
            json!({"k": key}),
        )
        .await)["rotateKey"]
        .clone();
    assert_ne!(rotated["key"]["id"], key.as_str());
    let revoked = ok(&admin
        .gql(
            Some(&owner),
            "mutation($k: ID!) { revokeKey(id: $k) { status } }",
            json!({"k": rotated["key"]["id"]}),
        )
        .await)["revokeKey"]
        .clone();
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(
        ok(&admin
            .gql(
                Some(&owner),
                "mutation($b: ID!) { deleteBudget(id: $b) }",
                json!({"b": budget_id})
            )
            .await)["deleteBudget"],
        true
    );
}

/// Runs a REST call and returns (status, JSON body).
async fn rest(admin: &Admin, req: web_test::TestRequest) -> (u16, Value) {
    let response = (admin.call)(req).await;
    let status = response.status().as_u16();
    let body = web_test::read_body(response).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn invitations_and_admin_tokens_open_the_organization_to_the_right_people(db: Db) {
    let admin = Admin::start(db).await;
    let (_, org, owner) = admin.signup("inv-owner@example.com").await;
    let (_, _, stranger) = admin.signup("inv-stranger@example.com").await;
    let viewer = admin
        .join(&org, "inv-viewer@example.com", Role::Viewer)
        .await;
    let org_admin = admin.join(&org, "inv-admin@example.com", Role::Admin).await;

    // an owner invites a new person; the token is shown once, the list never has it
    let issued = ok(&admin
        .gql(
            Some(&owner),
            "mutation { inviteMember(email: \"New.Person@example.com\", role: MEMBER) { token invitation { id email role expiresAt } } }",
            json!({}),
        )
        .await)["inviteMember"]
        .clone();
    let token = issued["token"].as_str().unwrap().to_owned();
    let invitation = issued["invitation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(issued["invitation"]["role"], "MEMBER");
    let listed = ok(&admin
        .gql(Some(&owner), "{ invitations { id email } }", json!({}))
        .await)["invitations"]
        .clone();
    assert_eq!(listed[0]["id"], invitation.as_str());
    assert!(!listed.to_string().contains(&token));

    // who may invite: owners only (not admins, not viewers), not outsiders for this invitation
    for (who, document) in [
        (
            &viewer,
            "mutation { inviteMember(email: \"x@example.com\", role: VIEWER) { token } }",
        ),
        (
            &org_admin,
            "mutation { inviteMember(email: \"x@example.com\", role: VIEWER) { token } }",
        ),
        (&viewer, "{ invitations { id } }"),
    ] {
        let answer = admin.gql(Some(who), document, json!({})).await;
        assert_eq!(code(&answer), Some("FORBIDDEN"), "{document}: {answer}");
    }
    let answer = admin
        .gql(
            Some(&stranger),
            "mutation($i: ID!) { revokeInvitation(id: $i) }",
            json!({"i": invitation}),
        )
        .await;
    assert_eq!(code(&answer), Some("NOT_FOUND"));
    assert_eq!(
        ok(&admin
            .gql(Some(&stranger), "{ invitations { id } }", json!({}))
            .await)["invitations"],
        json!([])
    );
    // inviting someone who is already a member
    let answer = admin
        .gql(
            Some(&owner),
            "mutation { inviteMember(email: \"inv-viewer@example.com\", role: ADMIN) { token } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("CONFLICT"), "{answer}");

    // the link: previewed, then accepted once with a new password
    let (status, preview) = rest(
        &admin,
        web_test::TestRequest::post()
            .uri("/auth/invitations/preview")
            .set_json(json!({"token": token})),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["email"], "New.Person@example.com");
    assert_eq!(preview["organization"]["id"], org.as_str());
    assert_eq!(preview["existing_user"], false);
    let (status, weak) = rest(
        &admin,
        web_test::TestRequest::post()
            .uri("/auth/invitations/accept")
            .set_json(json!({"token": token, "password": "short"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(weak["error"]["param"], "password");
    let (status, session) = rest(
        &admin,
        web_test::TestRequest::post()
            .uri("/auth/invitations/accept")
            .set_json(json!({"token": token, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let newcomer = session["access_token"].as_str().unwrap().to_owned();
    let me = ok(&admin
        .gql(
            Some(&newcomer),
            "{ viewer { email role organization { id } } }",
            json!({}),
        )
        .await)["viewer"]
        .clone();
    assert_eq!(me["role"], "MEMBER");
    assert_eq!(me["organization"]["id"], org.as_str());
    let (status, _) = rest(
        &admin,
        web_test::TestRequest::post()
            .uri("/auth/invitations/accept")
            .set_json(json!({"token": token, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 404, "a link works once");
    for bad in ["", "not a token", &"x".repeat(5000)] {
        let (status, body) = rest(
            &admin,
            web_test::TestRequest::post()
                .uri("/auth/invitations/preview")
                .set_json(json!({"token": bad})),
        )
        .await;
        assert_eq!(status, 404, "{body}");
    }

    // an existing account joins with its own password; a wrong one is refused
    let token = ok(&admin
        .gql(Some(&owner), "mutation { inviteMember(email: \"inv-stranger@example.com\", role: VIEWER) { token } }", json!({}))
        .await)["inviteMember"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = rest(
        &admin,
        web_test::TestRequest::post()
            .uri("/auth/invitations/accept")
            .set_json(json!({"token": token, "password": "a wrong passphrase here"})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = rest(
        &admin,
        web_test::TestRequest::post()
            .uri("/auth/invitations/accept")
            .set_json(json!({"token": token, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        ok(&admin
            .gql(Some(&owner), "{ members { email } }", json!({}))
            .await)["members"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // a withdrawn invitation no longer opens anything
    let issued = ok(&admin
        .gql(Some(&owner), "mutation { inviteMember(email: \"late@example.com\", role: VIEWER) { token invitation { id } } }", json!({}))
        .await)["inviteMember"]
        .clone();
    assert_eq!(
        ok(&admin
            .gql(
                Some(&owner),
                "mutation($i: ID!) { revokeInvitation(id: $i) }",
                json!({"i": issued["invitation"]["id"]})
            )
            .await)["revokeInvitation"],
        true
    );
    let (status, _) = rest(
        &admin,
        web_test::TestRequest::post()
            .uri("/auth/invitations/preview")
            .set_json(json!({"token": issued["token"]})),
    )
    .await;
    assert_eq!(status, 404);

    // admin tokens: a script acts with the token's role, never more than its creator's
    let issued = ok(&admin
        .gql(Some(&owner), "mutation { createAdminToken(name: \"ci\", role: ADMIN) { secret token { id role displayPrefix } } }", json!({}))
        .await)["createAdminToken"]
        .clone();
    let script = issued["secret"].as_str().unwrap().to_owned();
    let script_id = issued["token"]["id"].as_str().unwrap().to_owned();
    assert!(script.starts_with(issued["token"]["displayPrefix"].as_str().unwrap()));
    assert_eq!(
        ok(&admin
            .gql(
                Some(&script),
                "mutation { createTeam(name: \"from-script\") { name } }",
                json!({})
            )
            .await)["createTeam"]["name"],
        "from-script"
    );
    let (status, teams) = rest(
        &admin,
        web_test::TestRequest::get()
            .uri("/auth/teams")
            .insert_header(("authorization", format!("Bearer {script}"))),
    )
    .await;
    assert_eq!(status, 200, "admin tokens open the REST API too");
    assert_eq!(teams["data"].as_array().unwrap().len(), 2);
    let listed = ok(&admin
        .gql(Some(&owner), "{ adminTokens { id lastUsedAt } }", json!({}))
        .await)["adminTokens"]
        .clone();
    assert!(listed[0]["lastUsedAt"].is_i64());
    assert!(!listed.to_string().contains(&script));

    let read_only = ok(&admin
        .gql(
            Some(&owner),
            "mutation { createAdminToken(name: \"reports\", role: VIEWER) { secret } }",
            json!({}),
        )
        .await)["createAdminToken"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = admin
        .gql(
            Some(&read_only),
            "mutation { createTeam(name: \"nope\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("FORBIDDEN"));
    assert!(
        ok(&admin
            .gql(Some(&read_only), "{ teams { id } }", json!({}))
            .await)["teams"]
            .is_array()
    );

    for (who, document) in [
        (
            &viewer,
            "mutation { createAdminToken(name: \"up\", role: ADMIN) { secret } }",
        ),
        (
            &viewer,
            "mutation($i: ID!) { revokeAdminToken(id: $i) { id } }",
        ),
    ] {
        let answer = admin
            .gql(Some(who), document, json!({"i": script_id}))
            .await;
        assert_eq!(code(&answer), Some("FORBIDDEN"), "{document}: {answer}");
    }
    let answer = admin
        .gql(
            Some(&stranger),
            "mutation($i: ID!) { revokeAdminToken(id: $i) { id } }",
            json!({"i": script_id}),
        )
        .await;
    assert_eq!(code(&answer), Some("NOT_FOUND"));
    let answer = admin
        .gql(Some(&owner), "mutation { createAdminToken(name: \"old\", role: VIEWER, expiresAt: 1000) { secret } }", json!({}))
        .await;
    assert_eq!(code(&answer), Some("BAD_USER_INPUT"));

    // a token made by an admin who then leaves stops working
    let admins_token = ok(&admin
        .gql(
            Some(&org_admin),
            "mutation { createAdminToken(name: \"mine\", role: ADMIN) { secret } }",
            json!({}),
        )
        .await)["createAdminToken"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        admin
            .gql(Some(&admins_token), "{ teams { id } }", json!({}))
            .await
            .get("errors")
            .is_none()
    );
    let admin_id = ok(&admin
        .gql(Some(&org_admin), "{ viewer { userId } }", json!({}))
        .await)["viewer"]["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&admin
        .gql(
            Some(&owner),
            "mutation($u: ID!) { removeMember(userId: $u) }",
            json!({"u": admin_id}),
        )
        .await);
    let answer = admin
        .gql(Some(&admins_token), "{ teams { id } }", json!({}))
        .await;
    assert_eq!(code(&answer), Some("UNAUTHENTICATED"));

    // revoked: refused at once
    let revoked = ok(&admin
        .gql(
            Some(&owner),
            "mutation($i: ID!) { revokeAdminToken(id: $i) { revokedAt } }",
            json!({"i": script_id}),
        )
        .await)["revokeAdminToken"]
        .clone();
    assert!(revoked["revokedAt"].is_i64());
    let answer = admin
        .gql(Some(&script), "{ teams { id } }", json!({}))
        .await;
    assert_eq!(code(&answer), Some("UNAUTHENTICATED"));
}

async fn keys_name_their_team_and_budgets_show_reservations(db: Db) {
    let admin = Admin::start(db).await;
    let (_, _, owner) = admin.signup("loader@example.com").await;
    for name in ["alpha", "beta"] {
        let team = ok(&admin
            .gql(
                Some(&owner),
                "mutation($n: String!) { createTeam(name: $n) { id } }",
                json!({"n": name}),
            )
            .await)["createTeam"]["id"]
            .clone();
        for _ in 0..3 {
            ok(&admin
                .gql(
                    Some(&owner),
                    "mutation($t: ID) { createKey(input: {teamId: $t}) { secret } }",
                    json!({"t": team}),
                )
                .await);
        }
    }
    let keys = ok(&admin
        .gql(
            Some(&owner),
            "{ keys { teamId team { id name } } }",
            json!({}),
        )
        .await)["keys"]
        .clone();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 7);
    for key in keys {
        assert_eq!(key["team"]["id"], key["teamId"], "{key}");
    }
    assert_eq!(
        keys.iter().filter(|k| k["team"]["name"] == "alpha").count(),
        3
    );

    let budget = ok(&admin
        .gql(Some(&owner), "mutation { createBudget(input: {scope: \"organization\", period: \"monthly\", limitUsd: \"1\"}) { id periodStart reservedUsd remainingUsd } }", json!({}))
        .await)["createBudget"]
        .clone();
    assert_eq!(budget["reservedUsd"], "0");
    // a request in flight holds 0.0015 USD (1,500,000 nanodollars) of it
    let counter = tollgate_billing::budgets::counter_name(
        budget["id"].as_str().unwrap(),
        budget["periodStart"].as_i64().unwrap(),
        None,
    );
    let reservation = admin
        .budgets
        .reserve(
            &[tollgate_billing::Charge {
                counter,
                limit: 1_000_000_000,
                baseline: 0,
                ttl_secs: None,
            }],
            1_500_000,
        )
        .await
        .unwrap();
    assert!(matches!(
        reservation,
        tollgate_billing::budgets::Reservation::Admitted(_)
    ));
    let listed = ok(&admin
        .gql(
            Some(&owner),
            "{ budgets { reservedUsd spentUsd } }",
            json!({}),
        )
        .await)["budgets"][0]
        .clone();
    assert_eq!(listed["reservedUsd"], "0.0015");
    assert_eq!(listed["spentUsd"], "0");
}

async fn billing_is_read_by_admins_and_paid_by_owners(db: Db) {
    let stripe = tollgate_mock_stripe::MockStripe::start(Default::default())
        .await
        .unwrap();
    let stripe_config = tollgate_common::config::StripeConfig {
        api_base: stripe.url(),
        secret_key: Secret::new(stripe.api_key()),
        webhook_secret: Secret::new(stripe.webhook_secret()),
        meter_event_name: "tollgate_usage".into(),
        webhook_tolerance_secs: 300,
    };
    let api = tollgate_billing::payments::stripe::StripeApi::new(&stripe_config).unwrap();
    let config = tollgate_common::config::BillingConfig {
        public_url: Some("https://tollgate.example".into()),
        stripe: Some(stripe_config),
        ..Default::default()
    };
    let admin = Admin::start_with(
        db,
        tollgate_admin::billing::BillingSetup {
            config,
            stripe: Some(std::sync::Arc::new(api)),
        },
    )
    .await;
    let (_, org, owner) = admin.signup("billing-owner@example.com").await;
    let org_admin = admin
        .join(&org, "billing-admin@example.com", Role::Admin)
        .await;
    let member = admin
        .join(&org, "billing-member@example.com", Role::Member)
        .await;
    let viewer = admin
        .join(&org, "billing-viewer@example.com", Role::Viewer)
        .await;
    let read = "{ billing { enabled plan standing creditUsd paymentMethod { last4 } currentPeriod { runningUsd freeAllowanceUsd } invoices { id } } }";

    let billing = ok(&admin.gql(Some(&owner), read, json!({})).await)["billing"].clone();
    assert_eq!(billing["enabled"], true);
    assert_eq!(billing["plan"], "payg");
    assert_eq!(billing["standing"], "good");
    assert_eq!(billing["creditUsd"], "0");
    assert_eq!(billing["paymentMethod"], Value::Null);
    assert_eq!(billing["currentPeriod"]["freeAllowanceUsd"], "5");
    assert!(
        admin
            .gql(Some(&org_admin), read, json!({}))
            .await
            .get("errors")
            .is_none()
    );
    for who in [&member, &viewer] {
        assert_eq!(
            code(&admin.gql(Some(who), read, json!({})).await),
            Some("FORBIDDEN")
        );
    }

    // only owners pay; a Checkout page for a card, for credit, and the portal
    let card = "mutation { startCheckout(purpose: PAYMENT_METHOD) { url } }";
    for who in [&org_admin, &member, &viewer] {
        assert_eq!(
            code(&admin.gql(Some(who), card, json!({})).await),
            Some("FORBIDDEN")
        );
    }
    let url = ok(&admin.gql(Some(&owner), card, json!({})).await)["startCheckout"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&stripe.url()), "{url}");
    let credit = "mutation($a: String) { startCheckout(purpose: CREDIT, amountUsd: $a) { url } }";
    for bad in [json!("1"), json!("10.005"), json!("lots"), Value::Null] {
        let answer = admin.gql(Some(&owner), credit, json!({"a": bad})).await;
        assert_eq!(code(&answer), Some("BAD_USER_INPUT"), "{bad}: {answer}");
        assert_eq!(answer["errors"][0]["extensions"]["field"], "amountUsd");
    }
    assert!(
        ok(&admin.gql(Some(&owner), credit, json!({"a": "20"})).await)["startCheckout"]["url"]
            .is_string()
    );
    let portal = ok(&admin
        .gql(
            Some(&owner),
            "mutation { openBillingPortal { url } }",
            json!({}),
        )
        .await)["openBillingPortal"]["url"]
        .clone();
    assert!(portal.is_string());
    // one Stripe customer for the organization, however many pages were opened
    let customers = stripe
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/customers" && r.status == 200)
        .count();
    assert_eq!(customers, 1);

    // another organization sees its own, empty billing
    let (_, _, stranger) = admin.signup("billing-stranger@example.com").await;
    let theirs = ok(&admin.gql(Some(&stranger), read, json!({})).await)["billing"].clone();
    assert_eq!(theirs["invoices"], json!([]));
    assert_eq!(theirs["paymentMethod"], Value::Null);
}

/// The projected bill is what the month's invoice would be at this pace: the projected
/// billable usage less the free allowance ($5 by default) and the prepaid credit, whether the
/// credit is still left or already drawn by the month's reports.
async fn the_projected_bill_is_net_of_the_free_allowance_and_credit(db: Db) {
    use rust_decimal::Decimal;
    use tollgate_billing::payments::accounts::Accounts;
    use tollgate_billing::payments::pricing::Plan;
    use tollgate_billing::payments::reports::{UsageReporter, month_of};

    let admin = Admin::start(db).await;
    let (_, org, owner) = admin.signup("projected@example.com").await;
    let pool = admin
        .runtime
        .http
        .as_ref()
        .unwrap()
        .service
        .store()
        .pool()
        .clone();
    let usd = |n: i64| n * 1_000_000_000_000;
    // $12 of usage (no markup by default) in the month's first hour, and $3 of credit
    let (month_start, _) = month_of(tollgate_common::now_ms());
    seed_rollup(&admin, &org, "gpt-4o", month_start, 4, usd(12)).await;
    let accounts = Accounts::new(pool.clone());
    accounts.open(&org, Plan::PayAsYouGo).await.unwrap();
    accounts
        .grant_credit("cs_projected", &org, tollgate_common::Picodollars(usd(3)))
        .await
        .unwrap();
    let read = "{ billing { creditUsd currentPeriod { runningUsd projectedUsd projectedBillableUsd freeAllowanceUsd creditUsedUsd } } }";
    let decimal = |v: &Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    let projection = async || {
        let billing = ok(&admin.gql(Some(&owner), read, json!({})).await)["billing"].clone();
        let period = &billing["currentPeriod"];
        assert_eq!(period["runningUsd"], "12");
        assert_eq!(period["freeAllowanceUsd"], "5");
        let gross = decimal(&period["projectedBillableUsd"]);
        // carried on at this month's pace, never less than what is used already
        assert!(gross >= Decimal::from(12), "{billing}");
        (billing.clone(), gross, decimal(&period["projectedUsd"]))
    };

    // the credit still left: $5 free and $3 of credit off the projection
    let (billing, gross, net) = projection().await;
    assert_eq!(billing["creditUsd"], "3");
    assert_eq!(net, gross - Decimal::from(8), "{billing}");

    // the hour reported: the free allowance and the credit drawn, the same bill
    UsageReporter::new(pool.clone(), &Default::default())
        .report(month_start + 3_600_000)
        .await
        .unwrap();
    let (billing, gross, net) = projection().await;
    assert_eq!(billing["creditUsd"], "0");
    assert_eq!(billing["currentPeriod"]["creditUsedUsd"], "3");
    assert_eq!(net, gross - Decimal::from(8), "{billing}");

    // usage the free allowance covers is projected to no bill at all, never below zero
    let (_, small_org, small_owner) = admin.signup("projected-small@example.com").await;
    seed_rollup(&admin, &small_org, "gpt-4o", month_start, 1, 1_000_000).await;
    let billing = ok(&admin.gql(Some(&small_owner), read, json!({})).await)["billing"].clone();
    let period = &billing["currentPeriod"];
    let gross = decimal(&period["projectedBillableUsd"]);
    assert!(gross > Decimal::ZERO, "{billing}");
    let expected = (gross - Decimal::from(5)).max(Decimal::ZERO);
    assert_eq!(decimal(&period["projectedUsd"]), expected, "{billing}");
}

async fn billing_without_stripe_is_off(db: Db) {
    let admin = Admin::start(db).await;
    let (_, _, owner) = admin.signup("no-billing@example.com").await;
    let billing = ok(&admin
        .gql(Some(&owner), "{ billing { enabled } }", json!({}))
        .await)["billing"]
        .clone();
    assert_eq!(billing["enabled"], false);
    let answer = admin
        .gql(
            Some(&owner),
            "mutation { startCheckout(purpose: PAYMENT_METHOD) { url } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("BAD_USER_INPUT"));
}

async fn hostile_queries_are_refused(db: Db) {
    let admin = Admin::start(db).await;
    let (_, _, owner) = admin.signup("gql-hostile@example.com").await;
    let nested = "ofType { ".repeat(8) + "name" + &" }".repeat(8);
    let deep = format!("{{ __schema {{ types {{ fields {{ type {{ {nested} }} }} }} }} }}");
    let answer = admin.gql(Some(&owner), &deep, json!({})).await;
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{answer}"
    );
    // (Aliases, the other way to widen a document, are capped before complexity is counted:
    // see wide_documents_and_large_batches_are_refused.)
    let wide = "id ".repeat(1_100);
    let answer = admin
        .gql(
            Some(&owner),
            &format!("{{ teams {{ {wide} }} }}"),
            json!({}),
        )
        .await;
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{answer}"
    );
    let answer = admin.gql(Some(&owner), "{ teams { id ", json!({})).await;
    assert!(
        answer["errors"].is_array(),
        "a syntax error is an error, not a crash: {answer}"
    );
    let answer = admin.gql(Some(&owner), "{ nosuchfield }", json!({})).await;
    assert!(answer["errors"].is_array());
}

async fn wide_documents_and_large_batches_are_refused(db: Db) {
    let admin = Admin::start_settings(
        db,
        AdminSettings {
            body_limits: tollgate_common::body::BodyLimits {
                max_bytes: 64 * 1024,
                read_timeout: std::time::Duration::from_secs(5),
            },
            ..AdminSettings::default()
        },
    )
    .await;
    let (_, _, owner) = admin.signup("gql-wide@example.com").await;
    let max_aliases = tollgate_admin::operation_limits::MAX_ALIASES;
    let max_root = tollgate_admin::operation_limits::MAX_ROOT_FIELDS;

    // Many aliases of one cheap field: refused before it is validated or run.
    let nested: String = (0..=max_aliases).map(|i| format!("n{i}: name ")).collect();
    let answer = admin
        .gql(
            Some(&owner),
            &format!("{{ teams {{ {nested} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    assert!(answer["data"].is_null(), "{answer}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases"),
        "{answer}"
    );
    // The same field repeated without aliases, through a fragment: root fields are capped.
    let half = "teams { id } ".repeat(max_root / 2 + 1);
    let answer = admin
        .gql(
            Some(&owner),
            &format!("{{ ...A ...A }} fragment A on QueryRoot {{ {half} }}"),
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("root fields"),
        "{answer}"
    );
    // Just within the caps, documents run.
    let within: String = (0..max_aliases).map(|i| format!("n{i}: name ")).collect();
    ok(&admin
        .gql(
            Some(&owner),
            &format!("{{ teams {{ {within} }} }}"),
            json!({}),
        )
        .await);
    let within: String = (0..max_root)
        .map(|i| format!("t{i}: teams {{ id }} "))
        .collect();
    ok(&admin
        .gql(Some(&owner), &format!("{{ {within} }}"), json!({}))
        .await);

    // A batch runs each operation as the caller, up to the cap.
    let one = json!({"query": "{ viewer { email } }"});
    let batch = serde_json::to_vec(&json!([one, one])).unwrap();
    let (status, answer) = admin.raw("POST", batch, Some(&owner)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer[1]["data"]["viewer"]["email"], "gql-wide@example.com");
    let too_many =
        serde_json::to_vec(&vec![one.clone(); tollgate_admin::http::MAX_BATCH + 1]).unwrap();
    let (status, answer) = admin.raw("POST", too_many, Some(&owner)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(code(&answer), Some("BAD_USER_INPUT"));
    let (status, answer) = admin.raw("POST", b"[]".to_vec(), Some(&owner)).await;
    assert_eq!((status, code(&answer)), (400, Some("BAD_USER_INPUT")));

    // Bodies: over the limit (declared or not), and not GraphQL at all.
    let huge = serde_json::to_vec(
        &json!({"query": format!("{{ teams {{ id }} }} #{}", "x".repeat(70_000))}),
    )
    .unwrap();
    let (status, answer) = admin.raw("POST", huge, None).await;
    assert_eq!(
        (status, code(&answer)),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{answer}"
    );
    let (status, answer) = admin
        .raw("POST", b"{ teams { id } }".to_vec(), Some(&owner))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (400, Some("BAD_REQUEST")),
        "{answer}"
    );
}

async fn mutations_are_rate_limited_per_user(db: Db) {
    let admin = Admin::start_settings(
        db,
        AdminSettings {
            mutations_per_minute: 3,
            ..AdminSettings::default()
        },
    )
    .await;
    let (_, _, owner) = admin.signup("gql-busy@example.com").await;
    let (_, _, other) = admin.signup("gql-calm@example.com").await;
    let create = "mutation($n: String!) { createTeam(name: $n) { id } }";
    for n in 0..3 {
        ok(&admin
            .gql(Some(&owner), create, json!({"n": format!("t{n}")}))
            .await);
    }
    let answer = admin.gql(Some(&owner), create, json!({"n": "t3"})).await;
    assert_eq!(code(&answer), Some("RATE_LIMITED"), "{answer}");
    assert!(
        answer["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // Reading is not limited, and the refused change was not made.
    let teams = ok(&admin
        .gql(Some(&owner), "{ teams { name } }", json!({}))
        .await)["teams"]
        .clone();
    assert_eq!(
        teams.as_array().unwrap().len(),
        4,
        "the default team and three: {teams}"
    );

    // Another user has a bucket of their own, and aliases in one request are charged one by one.
    let aliased = "mutation { a: createTeam(name: \"a\") { id } b: createTeam(name: \"b\") { id } c: createTeam(name: \"c\") { id } d: createTeam(name: \"d\") { id } }";
    let answer = admin.gql(Some(&other), aliased, json!({})).await;
    assert_eq!(code(&answer), Some("RATE_LIMITED"), "{answer}");
    assert_eq!(answer["errors"].as_array().unwrap().len(), 1, "{answer}");
    let teams = ok(&admin
        .gql(Some(&other), "{ teams { name } }", json!({}))
        .await)["teams"]
        .clone();
    assert_eq!(
        teams.as_array().unwrap().len(),
        4,
        "the default team and a, b, c: {teams}"
    );

    // A caller without a token is refused as before, and charged nothing.
    let answer = admin.gql(None, create, json!({"n": "x"})).await;
    assert_eq!(code(&answer), Some("UNAUTHENTICATED"));
}

async fn introspection_and_graphiql_are_for_logged_in_callers_by_default(db: Db) {
    let introspect = "{ __schema { queryType { name } } }";
    let admin = Admin::start(db).await;
    let (_, _, owner) = admin.signup("gql-introspect@example.com").await;
    let answer = admin.gql(None, introspect, json!({})).await;
    assert_eq!(code(&answer), Some("UNAUTHENTICATED"), "{answer}");
    assert!(answer["data"]["__schema"].is_null(), "{answer}");
    let answer = admin
        .gql(
            None,
            "{ __type(name: \"VirtualKey\") { fields { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("UNAUTHENTICATED"), "{answer}");
    // `__typename` is not introspection of the schema: it stays open.
    let answer = admin.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(ok(&answer)["__typename"], "QueryRoot");
    let answer = admin.gql(Some(&owner), introspect, json!({})).await;
    assert_eq!(ok(&answer)["__schema"]["queryType"]["name"], "QueryRoot");
    let (status, answer) = admin.raw("GET", Vec::new(), None).await;
    assert_eq!(
        (status, code(&answer)),
        (404, Some("NOT_FOUND")),
        "{answer}"
    );

    let open = Admin::start_settings(
        db,
        AdminSettings {
            graphiql: true,
            ..AdminSettings::default()
        },
    )
    .await;
    let answer = open.gql(None, introspect, json!({})).await;
    assert_eq!(ok(&answer)["__schema"]["queryType"]["name"], "QueryRoot");
    let (status, page) = open.raw("GET", Vec::new(), None).await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().to_lowercase().contains("graphiql"));
}

/// Adds one hour's and one day's rollup row for `org` and `model`.
async fn seed_rollup(
    admin: &Admin,
    org: &str,
    model: &str,
    hour_ms: i64,
    requests: i64,
    cost_pico: i64,
) {
    let pool = admin
        .runtime
        .http
        .as_ref()
        .unwrap()
        .service
        .store()
        .pool()
        .clone();
    let day_ms = hour_ms - hour_ms.rem_euclid(86_400_000);
    for (granularity, bucket) in [("hour", hour_ms), ("day", day_ms)] {
        sqlx::query(
            "INSERT INTO usage_rollups (granularity, bucket_start, org_id, team_id, key_id, end_user, model, provider, \
             requests, errors, cache_hits, input_tokens, output_tokens, cached_tokens, cost_pico, saved_pico, latency_ms_sum) \
             VALUES ($1, $2, $3, '', '', '', $4, 'openai', $5, 0, 1, 100, 50, 0, $6, 7, 250)",
        )
        .bind(granularity)
        .bind(bucket)
        .bind(org)
        .bind(model)
        .bind(requests)
        .bind(cost_pico)
        .execute(&pool)
        .await
        .unwrap();
    }
}

async fn usage_is_read_from_the_callers_organization_only(db: Db) {
    let admin = Admin::start(db).await;
    let (_, org, owner) = admin.signup("gql-usage@example.com").await;
    let (_, other_org, stranger) = admin.signup("gql-usage-other@example.com").await;
    // 2026-11-20 10:00 UTC
    let hour = 1_795_168_800_000_i64;
    seed_rollup(&admin, &org, "gpt-4o", hour, 3, 1_500_000_000).await;
    seed_rollup(&admin, &org, "claude", hour + 3_600_000, 2, 250_000_000).await;
    seed_rollup(&admin, &other_org, "gpt-4o", hour, 99, 9_000_000_000_000).await;
    let day = hour - hour.rem_euclid(86_400_000);
    let input = json!({"from": day, "to": day + 86_400_000, "groupBy": "MODEL"});

    let totals = ok(&admin
        .gql(Some(&owner), "query($i: UsageInput!) { usageTotals(input: $i) { key figures { requests costUsd cacheHits savedUsd latencyMsAvg } } }", json!({"i": input}))
        .await)["usageTotals"]
        .clone();
    assert_eq!(
        totals,
        json!([
            {"key": "gpt-4o", "figures": {"requests": 3, "costUsd": "0.0015", "cacheHits": 1, "savedUsd": "0.000000000007", "latencyMsAvg": 250.0 / 3.0}},
            {"key": "claude", "figures": {"requests": 2, "costUsd": "0.00025", "cacheHits": 1, "savedUsd": "0.000000000007", "latencyMsAvg": 125.0}},
        ])
    );
    let series = ok(&admin
        .gql(Some(&owner), "query($i: UsageInput!) { usageSeries(input: $i) { bucketStart key figures { requests } } }", json!({"i": {"from": day, "to": day + 86_400_000, "bucket": "HOUR"}}))
        .await)["usageSeries"]
        .clone();
    assert_eq!(
        series,
        json!([
            {"bucketStart": hour, "key": null, "figures": {"requests": 3}},
            {"bucketStart": hour + 3_600_000, "key": null, "figures": {"requests": 2}},
        ])
    );
    // a budget shows what the ledger says it spent, and what is left
    let budget = ok(&admin
        .gql(Some(&owner), "mutation { createBudget(input: {scope: \"organization\", period: \"lifetime\", limitUsd: \"1\"}) { spentUsd remainingUsd periodStart } }", json!({}))
        .await)["createBudget"]
        .clone();
    assert_eq!(
        budget,
        json!({"spentUsd": "0.00175", "remainingUsd": "0.99825", "periodStart": 0})
    );
    let listed = ok(&admin
        .gql(Some(&owner), "{ budgets { spentUsd } }", json!({}))
        .await)["budgets"]
        .clone();
    assert_eq!(listed, json!([{"spentUsd": "0.00175"}]));

    // the other organization sees only its own
    let theirs = ok(&admin
        .gql(
            Some(&stranger),
            "query($i: UsageInput!) { usageTotals(input: $i) { key figures { requests } } }",
            json!({"i": input}),
        )
        .await)["usageTotals"]
        .clone();
    assert_eq!(
        theirs,
        json!([{"key": "gpt-4o", "figures": {"requests": 99}}])
    );
    // a bad range names its field
    let answer = admin
        .gql(
            Some(&owner),
            "query($i: UsageInput!) { usageTotals(input: $i) { key } }",
            json!({"i": {"from": day, "to": day}}),
        )
        .await;
    assert_eq!(code(&answer), Some("BAD_USER_INPUT"));
    assert_eq!(answer["errors"][0]["extensions"]["field"], "to");
    let answer = admin
        .gql(
            Some(&owner),
            "query($i: UsageInput!) { usageTotals(input: $i) { key } }",
            json!({"i": {"from": day, "to": day + 86_400_000, "groupBy": "TAG"}}),
        )
        .await;
    assert_eq!(answer["errors"][0]["extensions"]["field"], "tagKey");
    assert_eq!(
        code(
            &admin
                .gql(
                    None,
                    "query($i: UsageInput!) { usageTotals(input: $i) { key } }",
                    json!({"i": input})
                )
                .await
        ),
        Some("UNAUTHENTICATED")
    );
}

/// One usage event of `org` at `time`.
async fn seed_event(
    admin: &Admin,
    org: &str,
    id: &str,
    time: i64,
    model: &str,
    status: i64,
    tags: &str,
) {
    let pool = admin
        .runtime
        .http
        .as_ref()
        .unwrap()
        .service
        .store()
        .pool()
        .clone();
    sqlx::query(
        "INSERT INTO usage_events (event_id, request_id, time, org_id, team_id, key_id, user_id, end_user, tags, \
         endpoint, requested_model, provider, provider_model, input_tokens, output_tokens, cached_tokens, \
         usage_estimated, cost_pico, reserved_pico, saved_pico, latency_ms, ttft_ms, status, error, cache, attempts, stream) \
         VALUES ($1, $2, $3, $4, NULL, 'key-1', NULL, NULL, $5, 'chat_completions', $6, 'openai', $6, \
         10, 5, 0, 0, 1000000, 0, NULL, 42, NULL, $7, NULL, 'miss', 1, 0)",
    )
    .bind(id)
    .bind(format!("req-{id}"))
    .bind(time)
    .bind(org)
    .bind(tags)
    .bind(model)
    .bind(status)
    .execute(&pool)
    .await
    .unwrap();
}

async fn the_request_log_pages_and_filters_within_the_organization(db: Db) {
    let admin = Admin::start(db).await;
    let (_, org, owner) = admin.signup("gql-log@example.com").await;
    let (_, other_org, stranger) = admin.signup("gql-log-other@example.com").await;
    for i in 0..7_i64 {
        let (model, status, tags) = match i % 3 {
            0 => ("gpt-4o", 200, r#"{"feature":"search"}"#),
            1 => ("claude", 429, r#"{"feature":"50%_off"}"#),
            _ => ("gpt-4o", 200, "{}"),
        };
        seed_event(
            &admin,
            &org,
            &format!("e{i}"),
            1_000 + i * 10,
            model,
            status,
            tags,
        )
        .await;
    }
    seed_event(&admin, &other_org, "theirs", 1_005, "gpt-4o", 200, "{}").await;
    let query = "query($f: RequestFilter, $n: Int, $a: String) { requests(filter: $f, first: $n, after: $a) { items { eventId status requestedModel costUsd tags { key value } } nextCursor } }";

    // three pages of three, newest first, never the other organization's
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = ok(&admin
            .gql(Some(&owner), query, json!({"n": 3, "a": after}))
            .await)["requests"]
            .clone();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["eventId"].as_str().unwrap().to_owned());
        }
        after = page["nextCursor"].clone();
        if after.is_null() {
            break;
        }
    }
    assert_eq!(seen, ["e6", "e5", "e4", "e3", "e2", "e1", "e0"]);
    let first =
        ok(&admin.gql(Some(&owner), query, json!({"n": 1})).await)["requests"]["items"][0].clone();
    assert_eq!(first["costUsd"], "0.000001");

    // filters
    let ids = |page: &Value| -> Vec<String> {
        page["requests"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["eventId"].as_str().unwrap().to_owned())
            .collect()
    };
    let failed = ok(&admin
        .gql(Some(&owner), query, json!({"f": {"failed": true}}))
        .await)
    .clone();
    assert_eq!(ids(&failed), ["e4", "e1"]);
    let by_model = ok(&admin
        .gql(
            Some(&owner),
            query,
            json!({"f": {"model": "gpt-4o", "from": 1_020, "to": 1_061}}),
        )
        .await)
    .clone();
    assert_eq!(ids(&by_model), ["e6", "e5", "e3", "e2"]);
    let by_tag = ok(&admin
        .gql(
            Some(&owner),
            query,
            json!({"f": {"tag": {"key": "feature", "value": "50%_off"}}}),
        )
        .await)
    .clone();
    assert_eq!(
        ids(&by_tag),
        ["e4", "e1"],
        "LIKE wildcards in a tag are literal"
    );
    let by_tag = ok(&admin
        .gql(
            Some(&owner),
            query,
            json!({"f": {"tag": {"key": "feature", "value": "50%"}}}),
        )
        .await)
    .clone();
    assert_eq!(ids(&by_tag), Vec::<String>::new());
    let theirs = ok(&admin.gql(Some(&stranger), query, json!({})).await).clone();
    assert_eq!(ids(&theirs), ["theirs"]);

    // one request by its id, only within the organization
    let one = "query($id: String!) { request(eventId: $id) { eventId status requestedModel } }";
    let found = ok(&admin.gql(Some(&owner), one, json!({"id": "e4"})).await)["request"].clone();
    assert_eq!(
        found,
        json!({"eventId": "e4", "status": 429, "requestedModel": "claude"})
    );
    for (who, id) in [(&stranger, "e4"), (&owner, "theirs"), (&owner, "nope")] {
        let answer = ok(&admin.gql(Some(who), one, json!({"id": id})).await).clone();
        assert_eq!(answer["request"], Value::Null, "{id}");
    }

    // bad paging
    for (variables, field) in [
        (json!({"n": 0}), "first"),
        (json!({"n": 201}), "first"),
        (json!({"a": "not-a-cursor"}), "after"),
    ] {
        let answer = admin.gql(Some(&owner), query, variables).await;
        assert_eq!(code(&answer), Some("BAD_USER_INPUT"), "{answer}");
        assert_eq!(answer["errors"][0]["extensions"]["field"], field);
    }
}

/// One request of `org` through the ledger, as the gateway's usage records arrive: with what
/// guardrails did, if anything.
fn guarded_record(
    org: &str,
    id: &str,
    time_ms: i64,
    status: u16,
    actions: Vec<tollgate_common::GuardrailAction>,
) -> tollgate_billing::usage::UsageRecord {
    tollgate_billing::usage::UsageRecord {
        event_id: id.to_owned(),
        request_id: format!("req-{id}"),
        time_ms,
        org_id: org.to_owned(),
        team_id: None,
        key_id: Some("key-1".into()),
        user_id: None,
        end_user: None,
        tags: Default::default(),
        endpoint: "chat.completions".into(),
        requested_model: "gpt-4o".into(),
        provider: Some("openai".into()),
        provider_model: Some("gpt-4o".into()),
        input_tokens: 10,
        output_tokens: 5,
        cached_tokens: 0,
        usage_estimated: false,
        cost_pico: Some(if status < 400 { 1_000_000 } else { 0 }),
        reserved_pico: 0,
        saved_pico: None,
        latency_ms: 42,
        ttft_ms: None,
        status,
        error: (status >= 400).then(|| "guardrail_violation".to_owned()),
        cache: "miss".into(),
        attempts: u32::from(status < 400),
        stream: false,
        guardrail: tollgate_billing::usage::most_severe(&actions).map(str::to_owned),
        guardrail_actions: actions,
    }
}

async fn guardrail_outcomes_show_in_the_log_and_group_usage_within_the_organization(db: Db) {
    use tollgate_common::{EntityKind, GuardrailAction, Taken};
    let admin = Admin::start(db).await;
    let (_, org, owner) = admin.signup("gql-guardrails@example.com").await;
    let (_, other_org, stranger) = admin.signup("gql-guardrails-other@example.com").await;
    let action = |policy: &str, rule: &str, taken, entities: Vec<EntityKind>| GuardrailAction {
        policy: policy.into(),
        rule: rule.into(),
        taken,
        entities,
    };
    // 2026-11-20 10:00 UTC
    let hour = 1_795_168_800_000_i64;
    let records = vec![
        guarded_record(&org, "plain", hour, 200, Vec::new()),
        guarded_record(
            &org,
            "redacted",
            hour + 1,
            200,
            vec![
                action(
                    "organization",
                    "input.pii",
                    Taken::Redacted,
                    vec![EntityKind::Email, EntityKind::CreditCard],
                ),
                action(
                    "organization",
                    "output.pii",
                    Taken::Restored,
                    vec![EntityKind::Email],
                ),
            ],
        ),
        guarded_record(
            &org,
            "blocked",
            hour + 2,
            400,
            vec![action(
                "key",
                "input.deny_regex[0]",
                Taken::Blocked,
                Vec::new(),
            )],
        ),
        guarded_record(
            &other_org,
            "theirs-blocked",
            hour + 3,
            400,
            vec![action(
                "team",
                "input.deny_keywords",
                Taken::Blocked,
                Vec::new(),
            )],
        ),
    ];
    let pool = admin
        .runtime
        .http
        .as_ref()
        .unwrap()
        .service
        .store()
        .pool()
        .clone();
    tollgate_billing::usage::Ledger::new(pool)
        .record(&records)
        .await
        .unwrap();

    let log = "query($f: RequestFilter) { requests(filter: $f) { items { eventId guardrail guardrailActions { policy rule taken entities } } } }";
    let items = ok(&admin.gql(Some(&owner), log, json!({})).await)["requests"]["items"].clone();
    assert_eq!(
        items,
        json!([
            {"eventId": "blocked", "guardrail": "BLOCKED", "guardrailActions": [
                {"policy": "key", "rule": "input.deny_regex[0]", "taken": "BLOCKED", "entities": []},
            ]},
            {"eventId": "redacted", "guardrail": "REDACTED", "guardrailActions": [
                {"policy": "organization", "rule": "input.pii", "taken": "REDACTED", "entities": ["email", "credit_card"]},
                {"policy": "organization", "rule": "output.pii", "taken": "RESTORED", "entities": ["email"]},
            ]},
            {"eventId": "plain", "guardrail": null, "guardrailActions": []},
        ])
    );
    let ids = |answer: &Value| -> Vec<String> {
        answer["requests"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["eventId"].as_str().unwrap().to_owned())
            .collect()
    };
    let only_blocked = json!({"f": {"guardrail": "BLOCKED"}});
    assert_eq!(
        ids(ok(&admin
            .gql(Some(&owner), log, only_blocked.clone())
            .await)),
        ["blocked"]
    );
    assert_eq!(
        ids(ok(&admin.gql(Some(&stranger), log, only_blocked).await)),
        ["theirs-blocked"]
    );
    let one =
        "query($id: String!) { request(eventId: $id) { guardrail guardrailActions { taken } } }";
    assert_eq!(
        ok(&admin
            .gql(Some(&owner), one, json!({"id": "redacted"}))
            .await)["request"],
        json!({"guardrail": "REDACTED", "guardrailActions": [{"taken": "REDACTED"}, {"taken": "RESTORED"}]})
    );
    assert_eq!(
        ok(&admin
            .gql(Some(&owner), one, json!({"id": "theirs-blocked"}))
            .await)["request"],
        Value::Null
    );

    let day = hour - hour.rem_euclid(86_400_000);
    let totals = "query($i: UsageInput!) { usageTotals(input: $i) { key figures { requests errors costUsd } } }";
    let by_guardrail = json!({"i": {"from": day, "to": day + 86_400_000, "groupBy": "GUARDRAIL"}});
    assert_eq!(
        ok(&admin.gql(Some(&owner), totals, by_guardrail.clone()).await)["usageTotals"],
        json!([
            // Equal costs and requests: ordered by key, none first.
            {"key": null, "figures": {"requests": 1, "errors": 0, "costUsd": "0.000001"}},
            {"key": "redacted", "figures": {"requests": 1, "errors": 0, "costUsd": "0.000001"}},
            {"key": "blocked", "figures": {"requests": 1, "errors": 1, "costUsd": "0"}},
        ])
    );
    assert_eq!(
        ok(&admin.gql(Some(&stranger), totals, by_guardrail).await)["usageTotals"],
        json!([{"key": "blocked", "figures": {"requests": 1, "errors": 1, "costUsd": "0"}}])
    );
    let blocked_only = json!({"i": {"from": day, "to": day + 86_400_000, "guardrail": "BLOCKED"}});
    assert_eq!(
        ok(&admin.gql(Some(&owner), totals, blocked_only).await)["usageTotals"],
        json!([{"key": null, "figures": {"requests": 1, "errors": 1, "costUsd": "0"}}])
    );
}

/// Bring your own key: owners set keys (kept sealed, shown by their last four characters),
/// admins see them, nobody else; the plan needs the deployment's consent and a key; the
/// gateway's key context carries the opened key for that organization only.
async fn own_provider_keys_are_sealed_and_kept_to_their_organization(db: Db) {
    use tollgate_auth::KeyVerifier;

    // without the deployment's consent
    let plain = Admin::start(db).await;
    let (_, _, owner) = plain.signup("no-byok@example.com").await;
    let answer = plain
        .gql(
            Some(&owner),
            "mutation { setProviderKey(provider: \"openai\", apiKey: \"sk-own-0001\") { hint } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("FORBIDDEN"), "{answer}");
    let answer = plain
        .gql(
            Some(&owner),
            "mutation { setBillingPlan(plan: BRING_YOUR_OWN_KEY) }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("FORBIDDEN"), "{answer}");
    let view = ok(&plain
        .gql(
            Some(&owner),
            "{ ownProviderKeys { available inUse keys { provider } } }",
            json!({}),
        )
        .await)["ownProviderKeys"]
        .clone();
    assert_eq!(
        view,
        json!({"available": false, "inUse": false, "keys": []})
    );

    let mut config = tollgate_common::config::BillingConfig::default();
    config.bring_your_own_key.enabled = true;
    config.bring_your_own_key.per_request_usd = "0.001".parse().unwrap();
    // 32 bytes of 42, in base64
    config.bring_your_own_key.encryption_key =
        Some(Secret::new("KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio="));
    let admin = Admin::start_with(
        db,
        tollgate_admin::billing::BillingSetup {
            config,
            stripe: None,
        },
    )
    .await;
    let (_, org, owner) = admin.signup("byok-owner@example.com").await;
    let (_, _, stranger) = admin.signup("byok-stranger@example.com").await;
    let org_admin = admin
        .join(&org, "byok-admin@example.com", Role::Admin)
        .await;
    let viewer = admin
        .join(&org, "byok-viewer@example.com", Role::Viewer)
        .await;
    let secret = ok(&admin
        .gql(
            Some(&owner),
            "mutation { createKey(input: {name: \"byok\"}) { secret } }",
            json!({}),
        )
        .await)["createKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    // the plan needs a key first
    let answer = admin
        .gql(
            Some(&owner),
            "mutation { setBillingPlan(plan: BRING_YOUR_OWN_KEY) }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("BAD_USER_INPUT"), "{answer}");

    // who may set keys: owners only; and only for the deployment's providers
    let set = "mutation($p: String!, $k: String!) { setProviderKey(provider: $p, apiKey: $k) { provider hint createdAt } }";
    for who in [&org_admin, &viewer] {
        let answer = admin
            .gql(Some(who), set, json!({"p": "openai", "k": "sk-own-0001"}))
            .await;
        assert_eq!(code(&answer), Some("FORBIDDEN"), "{answer}");
    }
    for (provider, key) in [
        ("mistery", "sk-own-0001"),
        ("openai", ""),
        ("openai", "sk own"),
    ] {
        let answer = admin
            .gql(Some(&owner), set, json!({"p": provider, "k": key}))
            .await;
        assert_eq!(
            code(&answer),
            Some("BAD_USER_INPUT"),
            "{provider} {key:?}: {answer}"
        );
    }
    let stored = ok(&admin
        .gql(
            Some(&owner),
            set,
            json!({"p": "openai", "k": "sk-own-secret-9876"}),
        )
        .await)["setProviderKey"]
        .clone();
    assert_eq!(stored["hint"], "…9876");
    ok(&admin
        .gql(
            Some(&owner),
            "mutation { setBillingPlan(plan: BRING_YOUR_OWN_KEY) }",
            json!({}),
        )
        .await);

    // admins read it, without the key; strangers see their own (none)
    let query =
        "{ ownProviderKeys { available inUse providers keys { provider hint } feePerRequestUsd } }";
    let view = ok(&admin.gql(Some(&org_admin), query, json!({})).await)["ownProviderKeys"].clone();
    assert_eq!(
        view,
        json!({"available": true, "inUse": true, "providers": ["openai"],
               "keys": [{"provider": "openai", "hint": "…9876"}], "feePerRequestUsd": "0.001"})
    );
    assert!(!view.to_string().contains("sk-own-secret"));
    assert_eq!(
        code(&admin.gql(Some(&viewer), query, json!({})).await),
        Some("FORBIDDEN")
    );
    let theirs = ok(&admin.gql(Some(&stranger), query, json!({})).await)["ownProviderKeys"].clone();
    assert_eq!(theirs["keys"], json!([]));
    assert_eq!(theirs["inUse"], false);
    let answer = admin
        .gql(
            Some(&stranger),
            "mutation { deleteProviderKey(provider: \"openai\") }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), Some("NOT_FOUND"), "{answer}");

    // stored sealed: the database never holds the key
    let pool = admin
        .runtime
        .http
        .as_ref()
        .unwrap()
        .service
        .store()
        .pool()
        .clone();
    let rows = sqlx::query("SELECT sealed, hint FROM provider_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let sealed: String = sqlx::Row::get(&rows[0], "sealed");
    assert!(!sealed.contains("sk-own"), "{sealed}");

    // the gateway's context for the organization's key carries the opened key
    let context = admin.runtime.keys.verify(&secret).await.unwrap();
    assert!(context.billing.own_provider_keys);
    assert_eq!(
        context.provider_keys.get("openai").map(|k| k.expose()),
        Some("sk-own-secret-9876")
    );

    // removed: the context has none, and the organization stays on its plan
    ok(&admin
        .gql(
            Some(&owner),
            "mutation { deleteProviderKey(provider: \"openai\") }",
            json!({}),
        )
        .await);
    let context = admin.runtime.keys.verify(&secret).await.unwrap();
    assert!(context.billing.own_provider_keys);
    assert!(context.provider_keys.is_empty());
    ok(&admin
        .gql(
            Some(&owner),
            "mutation { setBillingPlan(plan: PAY_AS_YOU_GO) }",
            json!({}),
        )
        .await);
    let context = admin.runtime.keys.verify(&secret).await.unwrap();
    assert!(!context.billing.own_provider_keys);
}

// Every scenario above, on SQLite and on PostgreSQL, as the auth tests run theirs.
#[path = "../../auth/tests/common/databases.rs"]
mod databases;

use databases::{Db, on_both_databases};

on_both_databases!(
    own_provider_keys_are_sealed_and_kept_to_their_organization,
    billing_is_read_by_admins_and_paid_by_owners,
    billing_without_stripe_is_off,
    the_projected_bill_is_net_of_the_free_allowance_and_credit,
    invitations_and_admin_tokens_open_the_organization_to_the_right_people,
    keys_name_their_team_and_budgets_show_reservations,
    everything_is_scoped_to_the_callers_organization_and_role,
    usage_is_read_from_the_callers_organization_only,
    the_request_log_pages_and_filters_within_the_organization,
    guardrail_outcomes_show_in_the_log_and_group_usage_within_the_organization,
    hostile_queries_are_refused,
    wide_documents_and_large_batches_are_refused,
    mutations_are_rate_limited_per_user,
    introspection_and_graphiql_are_for_logged_in_callers_by_default,
);

/// `api-schema/schema.graphql` is the schema the code serves; regenerate it with
/// `TOLLGATE_WRITE_SCHEMA=1 cargo test -p tollgate-admin --test graphql committed_schema`.
#[test]
fn committed_schema_matches_the_code() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../api-schema/schema.graphql");
    let generated = tollgate_admin::schema::sdl();
    if std::env::var_os("TOLLGATE_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "api-schema/schema.graphql differs from the code; regenerate it with TOLLGATE_WRITE_SCHEMA=1"
    );
}
