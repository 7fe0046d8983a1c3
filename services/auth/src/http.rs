//! The auth service's REST surface under `/auth` (documented in `api-schema/openapi.yaml`),
//! and the internal endpoints a split gateway verifies keys through.

use std::sync::Arc;

use actix_web::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tollgate_common::body::{BodyLimits, read_payload};
use tollgate_common::config::{IpNetwork, ServerConfig};
use tollgate_common::{CachePolicy, GuardrailPolicy, KeyId, Secret};

use crate::client_address::{client_address, throttle_client};
use crate::error::AuthError;
use crate::roles::Role;
use crate::service::{
    AcceptInvitation, Actor, AlertWebhookRequest, AuthService, BudgetPatch, BudgetSpec, Caller,
    KeyPatch, KeySpec, LoginRequest, PasswordChange, PolicyTarget, RotateRequest, SignupOutcome,
    SignupRequest,
};
use crate::store::{RatePair, TeamLimits};

/// Largest JSON body the auth endpoints accept, whatever `server.max_admin_body_bytes` allows:
/// theirs are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Header carrying the shared service token on internal endpoints.
pub const SERVICE_TOKEN_HEADER: &str = "x-tollgate-service-token";

/// What the handlers share.
pub struct AuthHttp {
    pub service: Arc<AuthService>,
    /// Required on `/auth/internal/*`; those endpoints answer 404 when it is not configured.
    pub service_token: Option<Secret>,
    /// How large a body may be and how long it may take to arrive (at most
    /// [`MAX_BODY_BYTES`]).
    pub body_limits: BodyLimits,
    /// Peers whose `X-Forwarded-For` names the client (`auth.trusted_proxies`).
    pub trusted_proxies: Vec<IpNetwork>,
}

type Reply = Result<HttpResponse, AuthError>;

/// Registers `/auth/*` on an actix app.
pub fn configure(
    state: Arc<AuthHttp>,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut web::ServiceConfig| {
        fn resource(path: &str) -> actix_web::Resource {
            web::resource(path).default_service(web::to(method_not_allowed))
        }
        // Internal endpoints do not exist, whatever the method, without a service token.
        fn internal(path: &str) -> actix_web::Resource {
            web::resource(path).default_service(web::to(internal_method_not_allowed))
        }
        cfg.service(
            web::scope("/auth")
                .app_data(web::Data::from(state.clone()))
                .service(resource("/signup").route(web::post().to(signup)))
                .service(resource("/signup/verify").route(web::post().to(verify_signup)))
                .service(resource("/login").route(web::post().to(login)))
                .service(resource("/refresh").route(web::post().to(refresh)))
                .service(resource("/logout").route(web::post().to(logout)))
                .service(resource("/password").route(web::post().to(change_password)))
                .service(resource("/me").route(web::get().to(me)))
                .service(
                    resource("/teams")
                        .route(web::get().to(list_teams))
                        .route(web::post().to(create_team)),
                )
                .service(
                    resource("/teams/{team}")
                        .route(web::get().to(get_team))
                        .route(web::patch().to(rename_team))
                        .route(web::delete().to(delete_team)),
                )
                .service(resource("/teams/{team}/members").route(web::get().to(list_team_members)))
                .service(
                    resource("/teams/{team}/limits")
                        .route(web::get().to(get_team_limits))
                        .route(web::put().to(set_team_limits)),
                )
                .service(
                    resource("/teams/{team}/cache-policy")
                        .route(web::get().to(get_team_cache_policy))
                        .route(web::put().to(set_team_cache_policy)),
                )
                .service(
                    resource("/teams/{team}/guardrails")
                        .route(web::get().to(get_team_guardrails))
                        .route(web::put().to(set_team_guardrails)),
                )
                .service(
                    resource("/teams/{team}/members/{user}")
                        .route(web::put().to(set_team_member))
                        .route(web::delete().to(remove_team_member)),
                )
                .service(resource("/members").route(web::get().to(list_members)))
                .service(
                    resource("/members/{user}")
                        .route(web::get().to(get_member))
                        .route(web::patch().to(set_member_role))
                        .route(web::delete().to(remove_member)),
                )
                .service(
                    resource("/keys")
                        .route(web::get().to(list_keys))
                        .route(web::post().to(create_key)),
                )
                .service(
                    resource("/keys/{key}")
                        .route(web::get().to(get_key))
                        .route(web::patch().to(update_key))
                        .route(web::delete().to(revoke_key)),
                )
                .service(resource("/keys/{key}/rotate").route(web::post().to(rotate_key)))
                .service(
                    resource("/keys/{key}/cache-policy")
                        .route(web::get().to(get_key_cache_policy))
                        .route(web::put().to(set_key_cache_policy)),
                )
                .service(
                    resource("/keys/{key}/guardrails")
                        .route(web::get().to(get_key_guardrails))
                        .route(web::put().to(set_key_guardrails)),
                )
                .service(resource("/keys/{key}/revoke").route(web::post().to(revoke_key)))
                .service(
                    resource("/limits")
                        .route(web::get().to(get_org_limits))
                        .route(web::put().to(set_org_limits)),
                )
                .service(
                    resource("/cache-policy")
                        .route(web::get().to(get_org_cache_policy))
                        .route(web::put().to(set_org_cache_policy)),
                )
                .service(
                    resource("/guardrails")
                        .route(web::get().to(get_org_guardrails))
                        .route(web::put().to(set_org_guardrails)),
                )
                .service(
                    resource("/budgets")
                        .route(web::get().to(list_budgets))
                        .route(web::post().to(create_budget)),
                )
                .service(
                    resource("/budgets/{budget}")
                        .route(web::patch().to(update_budget))
                        .route(web::delete().to(delete_budget)),
                )
                .service(
                    resource("/alerts/webhook")
                        .route(web::get().to(get_alert_webhook))
                        .route(web::put().to(set_alert_webhook)),
                )
                .service(resource("/audit").route(web::get().to(audit)))
                .service(
                    resource("/invitations")
                        .route(web::get().to(list_invitations))
                        .route(web::post().to(invite)),
                )
                .service(resource("/invitations/preview").route(web::post().to(preview_invitation)))
                .service(resource("/invitations/accept").route(web::post().to(accept_invitation)))
                .service(
                    resource("/invitations/{invitation}")
                        .route(web::delete().to(revoke_invitation)),
                )
                .service(
                    resource("/admin-tokens")
                        .route(web::get().to(list_admin_tokens))
                        .route(web::post().to(create_admin_token)),
                )
                .service(
                    resource("/admin-tokens/{token}").route(web::delete().to(revoke_admin_token)),
                )
                .service(internal("/internal/keys/lookup").route(web::post().to(internal_lookup)))
                .service(internal("/internal/keys/touch").route(web::post().to(internal_touch)))
                .default_service(web::to(not_found)),
        );
    }
}

// ---- invitations and admin tokens ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    email: String,
    role: Role,
}

async fn invite(req: HttpRequest, payload: web::Payload, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    let body: InviteBody = json_body(&req, payload).await?;
    let issued = state
        .service
        .invite(&caller, &body.email, body.role)
        .await?;
    Ok(HttpResponse::Created().json(issued))
}

async fn list_invitations(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(json!({"data": state.service.invitations(&caller).await?}))
}

async fn revoke_invitation(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    state.service.revoke_invitation(&caller, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

async fn preview_invitation(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let body: TokenBody = json_body(&req, payload).await?;
    ok(state.service.preview_invitation(&body.token).await?)
}

async fn accept_invitation(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let body: AcceptInvitation = json_body(&req, payload).await?;
    ok(state
        .service
        .accept_invitation(body, client_ip(&req, &state).as_deref())
        .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminTokenBody {
    name: String,
    role: Role,
    #[serde(default)]
    expires_at: Option<i64>,
}

async fn create_admin_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let body: AdminTokenBody = json_body(&req, payload).await?;
    let issued = state
        .service
        .create_admin_token(&caller, &body.name, body.role, body.expires_at)
        .await?;
    Ok(HttpResponse::Created().json(issued))
}

async fn list_admin_tokens(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(json!({"data": state.service.admin_tokens(&caller).await?}))
}

async fn revoke_admin_token(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(state.service.revoke_admin_token(&caller, &path).await?)
}

/// Reads and parses a JSON body, with OpenAI-shaped errors for every way it can be wrong.
async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, AuthError> {
    let limits = req
        .app_data::<web::Data<AuthHttp>>()
        .map_or_else(
            || BodyLimits::admin(&ServerConfig::default()),
            |state| state.body_limits,
        )
        .at_most(MAX_BODY_BYTES);
    json_body_within(req, payload, limits).await
}

/// [`json_body`] under `limits`.
async fn json_body_within<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limits: BodyLimits,
) -> Result<T, AuthError> {
    let body = read_payload(req, payload, limits).await?;
    if body.is_empty() {
        return Err(AuthError::MalformedJson(
            "the body is empty; send a JSON object".into(),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(&body);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    match parsed {
        Ok(value) => {
            deserializer
                .end()
                .map_err(|e| AuthError::MalformedJson(e.to_string()))?;
            Ok(value)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_data() {
                let param = if path == "." { String::new() } else { path };
                Err(AuthError::invalid(
                    param.clone(),
                    format!("{param}: {inner}")
                        .trim_start_matches(": ")
                        .to_owned(),
                ))
            } else {
                Err(AuthError::MalformedJson(inner.to_string()))
            }
        }
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn caller(req: &HttpRequest, state: &AuthHttp) -> Result<Caller, AuthError> {
    let token = bearer(req).ok_or(AuthError::MissingToken)?;
    state.service.caller(token).await
}

/// The client as the login throttle counts it: the peer, or, behind a trusted proxy, the
/// address the proxies forwarded (see [`crate::client_address`]).
fn client_ip(req: &HttpRequest, state: &AuthHttp) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok());
    Some(throttle_client(client_address(
        peer,
        forwarded,
        &state.trusted_proxies,
    )))
}

fn ok(value: impl serde::Serialize) -> Reply {
    Ok(HttpResponse::Ok().json(value))
}

async fn signup(req: HttpRequest, payload: web::Payload, state: web::Data<AuthHttp>) -> Reply {
    let request: SignupRequest = json_body(&req, payload).await?;
    let outcome = state
        .service
        .signup(request, client_ip(&req, &state).as_deref())
        .await?;
    Ok(match outcome {
        SignupOutcome::Created(created) => HttpResponse::Created().json(created),
        SignupOutcome::VerificationSent(sent) => HttpResponse::Accepted().json(sent),
    })
}

async fn verify_signup(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let body: TokenBody = json_body(&req, payload).await?;
    let created = state.service.verify_signup(&body.token).await?;
    Ok(HttpResponse::Created().json(created))
}

async fn login(req: HttpRequest, payload: web::Payload, state: web::Data<AuthHttp>) -> Reply {
    let request: LoginRequest = json_body(&req, payload).await?;
    ok(state
        .service
        .login(request, client_ip(&req, &state).as_deref())
        .await?)
}

async fn change_password(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let token = bearer(&req).ok_or(AuthError::MissingToken)?;
    let request: PasswordChange = json_body(&req, payload).await?;
    ok(state
        .service
        .change_password(token, request, client_ip(&req, &state).as_deref())
        .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(req: HttpRequest, payload: web::Payload, state: web::Data<AuthHttp>) -> Reply {
    let body: RefreshBody = json_body(&req, payload).await?;
    ok(state.service.refresh(&body.refresh_token).await?)
}

async fn logout(req: HttpRequest, payload: web::Payload, state: web::Data<AuthHttp>) -> Reply {
    let body: RefreshBody = json_body(&req, payload).await?;
    state.service.logout(&body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn me(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(state.service.me(&caller).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: Role,
}

async fn list_teams(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(json!({"data": state.service.teams(&caller).await?}))
}

async fn create_team(req: HttpRequest, payload: web::Payload, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    let body: NameBody = json_body(&req, payload).await?;
    Ok(HttpResponse::Created().json(state.service.create_team(&caller, &body.name).await?))
}

async fn get_team(req: HttpRequest, path: web::Path<String>, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(state.service.team(&caller, &path).await?)
}

async fn rename_team(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let body: NameBody = json_body(&req, payload).await?;
    ok(state
        .service
        .rename_team(&caller, &path, &body.name)
        .await?)
}

async fn delete_team(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    state.service.delete_team(&caller, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_team_members(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(json!({"data": state.service.team_members(&caller, &path).await?}))
}

async fn set_team_member(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let body: RoleBody = json_body(&req, payload).await?;
    let (team, user) = path.into_inner();
    state
        .service
        .set_team_member(&caller, &team, &user, body.role)
        .await?;
    ok(json!({"team_id": team, "user_id": user, "role": body.role}))
}

async fn remove_team_member(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let (team, user) = path.into_inner();
    state
        .service
        .remove_team_member(&caller, &team, &user)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_members(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(json!({"data": state.service.members(&caller).await?}))
}

async fn get_member(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(state.service.member(&caller, &path).await?)
}

async fn set_member_role(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let body: RoleBody = json_body(&req, payload).await?;
    ok(state
        .service
        .set_member_role(&caller, &path, body.role)
        .await?)
}

async fn remove_member(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    state.service.remove_member(&caller, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyQuery {
    #[serde(default)]
    team_id: Option<String>,
}

async fn list_keys(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    let query = web::Query::<KeyQuery>::from_query(req.query_string())
        .map_err(|e| AuthError::invalid("team_id", e.to_string()))?;
    ok(json!({"data": state.service.keys(&caller, query.team_id.as_deref()).await?}))
}

async fn create_key(req: HttpRequest, payload: web::Payload, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    let spec: KeySpec = json_body(&req, payload).await?;
    let org = caller.org;
    let issued = state
        .service
        .create_key(&Actor::User(caller), org, spec)
        .await?;
    Ok(HttpResponse::Created().json(issued))
}

async fn get_key(req: HttpRequest, path: web::Path<String>, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(state.service.key(&caller, &path).await?)
}

async fn update_key(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let patch: KeyPatch = json_body(&req, payload).await?;
    ok(state.service.update_key(&caller, &path, patch).await?)
}

async fn revoke_key(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let org = caller.org;
    ok(state
        .service
        .revoke_key(&Actor::User(caller), org, &path)
        .await?)
}

async fn rotate_key(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    // An empty body means the default grace period.
    let request: RotateRequest = if req.headers().get(CONTENT_LENGTH).is_some_and(|v| v != "0") {
        json_body(&req, payload).await?
    } else {
        RotateRequest::default()
    };
    ok(state.service.rotate_key(&caller, &path, request).await?)
}

async fn list_budgets(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(json!({ "data": state.service.budgets(&caller).await? }))
}

async fn create_budget(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let spec: BudgetSpec = json_body(&req, payload).await?;
    let budget = state.service.create_budget(&caller, spec).await?;
    Ok(HttpResponse::Created().json(budget))
}

async fn update_budget(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let patch: BudgetPatch = json_body(&req, payload).await?;
    ok(state.service.update_budget(&caller, &path, patch).await?)
}

async fn delete_budget(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    state.service.delete_budget(&caller, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_alert_webhook(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(state.service.alert_webhook(&caller).await?)
}

async fn set_alert_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let request: AlertWebhookRequest = json_body(&req, payload).await?;
    ok(state.service.set_alert_webhook(&caller, request).await?)
}

async fn get_org_limits(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(state.service.org_limits(&caller).await?)
}

async fn set_org_limits(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let limits: RatePair = json_body(&req, payload).await?;
    ok(state.service.set_org_limits(&caller, limits).await?)
}

async fn get_team_limits(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    ok(state.service.team_limits(&caller, &path).await?)
}

async fn set_team_limits(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    let caller = caller(&req, &state).await?;
    let limits: TeamLimits = json_body(&req, payload).await?;
    ok(state
        .service
        .set_team_limits(&caller, &path, limits)
        .await?)
}

async fn read_cache_policy(req: &HttpRequest, state: &AuthHttp, target: PolicyTarget<'_>) -> Reply {
    let caller = caller(req, state).await?;
    ok(state.service.cache_policy(&caller, target).await?)
}

async fn write_cache_policy(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AuthHttp,
    target: PolicyTarget<'_>,
) -> Reply {
    let caller = caller(req, state).await?;
    let policy: CachePolicy = json_body(req, payload).await?;
    ok(state
        .service
        .set_cache_policy(&caller, target, policy)
        .await?)
}

async fn get_org_cache_policy(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    read_cache_policy(&req, &state, PolicyTarget::Organization).await
}

async fn set_org_cache_policy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    write_cache_policy(&req, payload, &state, PolicyTarget::Organization).await
}

async fn get_team_cache_policy(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    read_cache_policy(&req, &state, PolicyTarget::Team(&path)).await
}

async fn set_team_cache_policy(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    write_cache_policy(&req, payload, &state, PolicyTarget::Team(&path)).await
}

async fn get_key_cache_policy(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    read_cache_policy(&req, &state, PolicyTarget::Key(&path)).await
}

async fn set_key_cache_policy(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    write_cache_policy(&req, payload, &state, PolicyTarget::Key(&path)).await
}

async fn read_guardrails(req: &HttpRequest, state: &AuthHttp, target: PolicyTarget<'_>) -> Reply {
    let caller = caller(req, state).await?;
    ok(state.service.guardrail_policy(&caller, target).await?)
}

async fn write_guardrails(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AuthHttp,
    target: PolicyTarget<'_>,
) -> Reply {
    let caller = caller(req, state).await?;
    let policy: GuardrailPolicy = json_body(req, payload).await?;
    ok(state
        .service
        .set_guardrail_policy(&caller, target, policy)
        .await?)
}

async fn get_org_guardrails(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    read_guardrails(&req, &state, PolicyTarget::Organization).await
}

async fn set_org_guardrails(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    write_guardrails(&req, payload, &state, PolicyTarget::Organization).await
}

async fn get_team_guardrails(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    read_guardrails(&req, &state, PolicyTarget::Team(&path)).await
}

async fn set_team_guardrails(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    write_guardrails(&req, payload, &state, PolicyTarget::Team(&path)).await
}

async fn get_key_guardrails(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AuthHttp>,
) -> Reply {
    read_guardrails(&req, &state, PolicyTarget::Key(&path)).await
}

async fn set_key_guardrails(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    write_guardrails(&req, payload, &state, PolicyTarget::Key(&path)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    limit: Option<i64>,
}

async fn audit(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    let caller = caller(&req, &state).await?;
    let query = web::Query::<AuditQuery>::from_query(req.query_string())
        .map_err(|e| AuthError::invalid("limit", e.to_string()))?;
    ok(json!({"data": state.service.audit_log(&caller, query.limit).await?}))
}

/// Internal endpoints exist only with a service token, and answer as if absent otherwise.
fn require_service(req: &HttpRequest, state: &AuthHttp) -> Result<(), AuthError> {
    let expected = state
        .service_token
        .as_ref()
        .ok_or_else(|| AuthError::RouteNotFound {
            method: req.method().to_string(),
            path: req.path().to_owned(),
        })?;
    let presented = req
        .headers()
        .get(SERVICE_TOKEN_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    // Compare digests, so that the comparison takes as long whatever the input.
    let matches = crate::secrets::hash_token_bytes(expected.expose())
        == crate::secrets::hash_token_bytes(&String::from_utf8_lossy(presented));
    if matches {
        Ok(())
    } else {
        Err(AuthError::Token(crate::sessions::TokenError::Invalid))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupBody {
    key_hash: String,
}

async fn internal_lookup(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    require_service(&req, &state)?;
    let body: LookupBody = json_body(&req, payload).await?;
    if body.key_hash.len() != 64 || !body.key_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::invalid(
            "key_hash",
            "`key_hash` must be 64 hexadecimal digits.",
        ));
    }
    let record = state.service.store().verified_key(&body.key_hash).await?;
    ok(json!({"key": record}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TouchBody {
    used: Vec<(KeyId, i64)>,
}

async fn internal_touch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AuthHttp>,
) -> Reply {
    require_service(&req, &state)?;
    let body: TouchBody = json_body(&req, payload).await?;
    state.service.store().touch_keys(&body.used).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn not_found(req: HttpRequest) -> Reply {
    Err(AuthError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

async fn internal_method_not_allowed(req: HttpRequest, state: web::Data<AuthHttp>) -> Reply {
    if state.service_token.is_none() {
        return not_found(req).await;
    }
    method_not_allowed(req).await
}

async fn method_not_allowed(req: HttpRequest) -> Reply {
    Err(AuthError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use actix_web::FromRequest;
    use actix_web::dev::Payload;
    use actix_web::test::TestRequest;

    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_bytes: MAX_BODY_BYTES,
        read_timeout: std::time::Duration::from_millis(200),
    };

    /// A body of `chunk`s sent for ever (`Some`) or nothing ever (`None`), through the reader
    /// of every `/auth` body.
    async fn read_endless(chunk: Option<&'static [u8]>) -> AuthError {
        let (req, _) = TestRequest::post().uri("/auth/signup").to_http_parts();
        let stream: futures_util::stream::LocalBoxStream<
            'static,
            Result<bytes::Bytes, actix_web::error::PayloadError>,
        > = match chunk {
            Some(chunk) => Box::pin(futures_util::stream::repeat_with(move || {
                Ok(bytes::Bytes::from_static(chunk))
            })),
            None => Box::pin(futures_util::stream::pending()),
        };
        let mut payload = Payload::Stream { payload: stream };
        let payload = web::Payload::from_request(&req, &mut payload)
            .await
            .unwrap();
        json_body_within::<serde_json::Value>(&req, payload, LIMITS)
            .await
            .unwrap_err()
    }

    #[actix_web::test]
    async fn an_endless_body_is_refused_at_the_limit() {
        let error = read_endless(Some(&[b' '; 4096])).await;
        assert!(
            matches!(error, AuthError::BodyTooLarge(MAX_BODY_BYTES)),
            "{error:?}"
        );
    }

    #[actix_web::test]
    async fn a_body_that_never_comes_is_a_408_after_the_read_timeout() {
        let started = std::time::Instant::now();
        let error = read_endless(None).await;
        assert!(matches!(error, AuthError::BodyTimeout(_)), "{error:?}");
        assert_eq!(
            actix_web::ResponseError::status_code(&error),
            actix_web::http::StatusCode::REQUEST_TIMEOUT
        );
        assert!(started.elapsed() >= LIMITS.read_timeout);
    }
}
