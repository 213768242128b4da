//! The web portal at `/portal`: server-rendered pages for the seeds' portal flow. A person
//! signs in to a tenant through the identity service (authorization code + PKCE, as the Azure
//! portal's client); the session keeps the tokens of each tenant signed in to, server-side; every
//! page reads and changes resources through the ARM API with those tokens (`api`), so the
//! portal is held to the same RBAC and cross-tenant checks as any client, and shows their
//! errors in words.
//!
//! Every response is neither framed nor cached and carries a Content-Security-Policy without
//! scripts; every POST must come from a portal page (`Origin`/`Sec-Fetch-Site`) and carry the
//! session's form token (`guard`).

mod api;
mod html;
mod pools;
mod session;
mod vnets;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::Value;

use crate::api::Answer;
use crate::html::{Signed, escape};
use crate::session::{Pending, Sessions, TenantTokens};

/// What the portal's handlers share.
#[derive(Debug)]
pub struct Portal {
    /// The server's API routes (ARM and the identity platform), called in process.
    api: Router,
    origin: String,
    sessions: Sessions,
    clock: Arc<dyn identity::Clock>,
}

impl Portal {
    /// Seconds since the epoch.
    fn now(&self) -> i64 {
        self.clock.now().0 / 1000
    }
}

/// The portal's routes. `api` is the server's router for ARM and the identity platform.
pub fn router(api: Router, origin: &str, clock: Arc<dyn identity::Clock>) -> Router {
    let portal = Arc::new(Portal {
        api,
        origin: origin.trim_end_matches('/').to_owned(),
        sessions: Sessions::default(),
        clock,
    });
    Router::new()
        .route("/portal", get(start))
        .route("/portal/signin", get(sign_in))
        .route("/portal/callback", get(callback))
        .route("/portal/signout", post(sign_out))
        .route("/portal/switch", get(switch))
        .route("/portal/t/{tenant}", get(home))
        .route("/portal/t/{tenant}/managers", get(pools::managers::managers))
        .route("/portal/t/{tenant}/manager", get(pools::managers::manager))
        .route(
            "/portal/t/{tenant}/pool/new",
            get(pools::create::new_pool).post(pools::create::create_pool),
        )
        .route("/portal/t/{tenant}/pool", get(pools::overview::pool))
        .route(
            "/portal/t/{tenant}/pool/allocate",
            get(pools::allocate::allocate).post(pools::allocate::associate),
        )
        .route(
            "/portal/t/{tenant}/pool/remove",
            get(pools::remove::confirm_remove).post(pools::remove::remove),
        )
        .route(
            "/portal/t/{tenant}/pool/cidr",
            get(pools::cidrs::new_cidr).post(pools::cidrs::create_cidr),
        )
        .route("/portal/t/{tenant}/pool/iam", post(pools::iam::add_role))
        .route("/portal/t/{tenant}/vnets", get(vnets::list))
        .route("/portal/t/{tenant}/vnet", get(vnets::show))
        .route("/portal/t/{tenant}/vnet/new", get(vnets::new_vnet).post(vnets::create_vnet))
        .layer(middleware::from_fn_with_state(portal.clone(), guard))
        .with_state(portal)
}

/// The portal's Content-Security-Policy: no script at all, styles from the page itself, forms
/// only to this origin, never in a frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Refuses a POST that does not come from a portal page of this session, and gives every
/// response the portal's security headers.
async fn guard(State(portal): State<Arc<Portal>>, request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::POST {
        match check_form_origin(&portal, request).await {
            Ok(request) => next.run(request).await,
            Err(refusal) => refusal,
        }
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// A POST passes when the browser says it comes from this origin (or says nothing) and its form
/// carries the session's form token; the request is handed back with its body.
async fn check_form_origin(portal: &Portal, request: Request) -> Result<Request, Response> {
    let refuse = |why: &str| {
        let body = format!(
            "{}<p><a href=\"/portal\">Back to the portal</a></p>",
            html::error(&format!("This form was refused: {why}. Reload the page and try again."))
        );
        (StatusCode::FORBIDDEN, Html(html::page("Refused", &[], None, &body, ""))).into_response()
    };
    let headers = request.headers();
    let header = |name: &str| headers.get(name).map(|value| value.to_str().unwrap_or("?"));
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refuse("it was sent from another site"));
    }
    if let Some(origin) = header("origin")
        && origin != portal.origin
    {
        return Err(refuse("it was sent from another origin"));
    }
    let session_id = session::session_id(request.headers()).unwrap_or_default();
    let session = portal.sessions.get(&session_id, portal.now());
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.map_err(|_| refuse("it is too large"))?;
    let token = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !session.is_some_and(|session| session::csrf_matches(&session, &token)) {
        return Err(refuse("it does not carry this session's form token"));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(body)))
}

/// The path and query of a `return=` target if it is a portal page of this origin (parsed with
/// the WHATWG rules against the portal's origin); `None` for anything else: another origin, a
/// scheme, a path outside the portal, control characters.
fn portal_return(origin: &str, text: &str) -> Option<String> {
    if text.chars().any(char::is_control) {
        return None;
    }
    let base = url::Url::parse(origin).ok()?;
    let target = base.join(text).ok()?;
    let same_origin = target.origin() == base.origin();
    (same_origin && target.path().starts_with("/portal/"))
        .then(|| target[url::Position::BeforePath..url::Position::AfterQuery].to_owned())
}

/// One request's view of the session: who is signed in where.
#[derive(Debug)]
pub(crate) struct Visit {
    portal: Arc<Portal>,
    session_id: String,
    tokens: HashMap<String, TenantTokens>,
    csrf: String,
}

impl Visit {
    fn from(portal: &Arc<Portal>, headers: &HeaderMap) -> Visit {
        let session_id = session::session_id(headers).unwrap_or_default();
        let session = portal.sessions.get(&session_id, portal.now());
        let (tokens, csrf) = session.map(|s| (s.tokens, s.csrf)).unwrap_or_default();
        Visit { portal: portal.clone(), session_id, tokens, csrf }
    }

    /// The hidden input with the session's form token, for forms that change something.
    pub(crate) fn csrf_field(&self) -> String {
        html::csrf_field(&self.csrf)
    }

    fn signed(&self) -> Vec<Signed> {
        let mut signed: Vec<Signed> = self
            .tokens
            .values()
            .map(|t| Signed { tenant_id: t.tenant_id.clone(), upn: t.upn.clone() })
            .collect();
        signed.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
        signed
    }

    /// A page for `tenant`.
    fn page(&self, title: &str, tenant: &str, body: &str) -> Response {
        Html(html::page(title, &self.signed(), Some(tenant), body, &self.csrf)).into_response()
    }

    /// The session's access token for a tenant, refreshed when it is about to expire; `None`
    /// when the person has not signed in there.
    async fn token(&mut self, tenant: &str) -> Option<String> {
        let tokens = self.tokens.get(tenant)?.clone();
        let now = self.portal.now();
        if tokens.expires_at - 120 > now {
            return Some(tokens.access_token);
        }
        let form = [
            ("client_id", identity::PORTAL_CLIENT_ID),
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh_token.as_str()),
            ("scope", "https://management.azure.com//.default offline_access"),
        ];
        let answer = api::token(&self.portal.api, tenant, &form).await;
        let fresh = tokens_from(&answer, now)?;
        self.portal.sessions.update(&self.session_id, |s| {
            s.tokens.insert(tenant.to_owned(), fresh.clone());
        });
        self.tokens.insert(tenant.to_owned(), fresh.clone());
        Some(fresh.access_token)
    }

    /// Calls the ARM API as the person in `tenant` (and, with `aux_tenant`, with that tenant's
    /// token as auxiliary).
    async fn arm(
        &mut self,
        tenant: &str,
        aux_tenant: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let Some(token) = self.token(tenant).await else {
            return not_signed_in(tenant);
        };
        let aux = match aux_tenant {
            Some(aux_tenant) => match self.token(aux_tenant).await {
                Some(aux) => Some(aux),
                None => return not_signed_in(aux_tenant),
            },
            None => None,
        };
        api::send(&self.portal.api, method, path, &token, aux.as_deref(), body).await
    }
}

fn not_signed_in(tenant: &str) -> Answer {
    Answer {
        status: 401,
        body: serde_json::json!({"error": {"code": "NotSignedIn", "message": format!("You are not signed in to tenant {tenant}; authenticate first.")}}),
    }
}

/// The tokens of a successful token response.
fn tokens_from(answer: &Answer, now: i64) -> Option<TenantTokens> {
    if !answer.ok() {
        return None;
    }
    let access_token = answer.body["access_token"].as_str()?.to_owned();
    let claims = claims(&access_token)?;
    Some(TenantTokens {
        tenant_id: claims["tid"].as_str()?.to_owned(),
        refresh_token: answer.body["refresh_token"].as_str().unwrap_or_default().to_owned(),
        expires_at: now + answer.body["expires_in"].as_i64().unwrap_or(3600),
        upn: claims["upn"]
            .as_str()
            .or(claims["preferred_username"].as_str())
            .unwrap_or_default()
            .to_owned(),
        access_token,
    })
}

/// The claims of a token the identity service just issued to us.
fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `/portal`: sign in to a tenant, or go on in one already signed in to.
async fn start(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let visit = Visit::from(&portal, &headers);
    let mut body = String::new();
    if let Some(message) = query.get("error") {
        body.push_str(&html::error(message));
    }
    let signed = visit.signed();
    if !signed.is_empty() {
        body.push_str("<h2>Your tenants</h2><ul>");
        for s in &signed {
            body.push_str(&format!(
                "<li><a href=\"/portal/t/{0}\">{0}</a> as {1}</li>",
                escape(&s.tenant_id),
                escape(&s.upn)
            ));
        }
        body.push_str("</ul>");
    }
    body.push_str(
        "<h2>Sign in</h2><form method=\"get\" action=\"/portal/signin\">\
         <label for=\"tenant\">Tenant (domain or id)</label><input id=\"tenant\" name=\"tenant\" required placeholder=\"contoso-a.example\">\
         <button type=\"submit\" id=\"signin\">Sign in</button></form>",
    );
    Html(html::page("Sign in", &signed, None, &body, &visit.csrf)).into_response()
}

/// Starts a sign-in to `tenant`: PKCE, state, and a redirect to the identity service.
async fn sign_in(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let tenant = query.get("tenant").map(|t| t.trim().to_owned()).unwrap_or_default();
    if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || ".-".contains(c)) {
        return Redirect::to("/portal?error=Enter+a+tenant+domain+or+id.").into_response();
    }
    let return_to = match query.get("return") {
        None => String::new(),
        Some(text) => match portal_return(&portal.origin, text) {
            Some(path) => path,
            None => {
                let body = html::error("The return address is not a page of this portal.");
                return (
                    StatusCode::BAD_REQUEST,
                    Html(html::page("Sign in", &[], None, &body, "")),
                )
                    .into_response();
            }
        },
    };
    let (mut session_id, mut set_cookie) =
        (session::session_id(&headers).unwrap_or_default(), false);
    if portal.sessions.get(&session_id, portal.now()).is_none() {
        session_id = portal.sessions.create(portal.now());
        set_cookie = true;
    }
    let (state, verifier) = (session::random_token(), session::random_token());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    portal.sessions.update(&session_id, |s| {
        s.pending.insert(state.clone(), Pending { tenant: tenant.clone(), verifier, return_to });
    });
    let redirect_uri = format!("{}{}", portal.origin, identity::PORTAL_CALLBACK_PATH);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", identity::PORTAL_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", "https://management.azure.com//.default openid profile offline_access"),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("prompt", "login"),
        ])
        .finish();
    let mut response =
        Redirect::to(&format!("/{tenant}/oauth2/v2.0/authorize?{query}")).into_response();
    if set_cookie && let Ok(value) = HeaderValue::from_str(&session::cookie(&session_id)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The identity service's redirect back: redeems the code and keeps the tokens.
async fn callback(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let session_id = session::session_id(&headers).unwrap_or_default();
    let state = query.get("state").cloned().unwrap_or_default();
    let pending =
        portal.sessions.get(&session_id, portal.now()).and_then(|s| s.pending.get(&state).cloned());
    let Some(pending) = pending else {
        return Redirect::to(
            "/portal?error=The+sign-in+expired+or+came+from+elsewhere%3B+sign+in+again.",
        )
        .into_response();
    };
    portal.sessions.update(&session_id, |s| {
        s.pending.remove(&state);
    });
    if let Some(error) = query.get("error_description").or(query.get("error")) {
        return Redirect::to(&format!("/portal?error={}", html::encode(error))).into_response();
    }
    let code = query.get("code").cloned().unwrap_or_default();
    let redirect_uri = format!("{}{}", portal.origin, identity::PORTAL_CALLBACK_PATH);
    let form = [
        ("client_id", identity::PORTAL_CLIENT_ID),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", pending.verifier.as_str()),
        ("scope", "https://management.azure.com//.default openid profile offline_access"),
    ];
    let answer = api::token(&portal.api, &pending.tenant, &form).await;
    let now = portal.now();
    let Some(tokens) = tokens_from(&answer, now) else {
        return Redirect::to(&format!("/portal?error={}", html::encode(&answer.error_text())))
            .into_response();
    };
    let tenant_id = tokens.tenant_id.clone();
    portal.sessions.update(&session_id, |s| {
        s.tokens.insert(tenant_id.clone(), tokens);
    });
    // A new id (and form token) at every sign-in: an id planted before it is worth nothing.
    let Some(new_id) = portal.sessions.renew(&session_id, now) else {
        return Redirect::to("/portal?error=The+session+ended%3B+sign+in+again.").into_response();
    };
    let target = if pending.return_to.is_empty() {
        format!("/portal/t/{tenant_id}")
    } else {
        pending.return_to
    };
    let mut response = Redirect::to(&target).into_response();
    if let Ok(value) = HeaderValue::from_str(&session::cookie(&new_id)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn sign_out(State(portal): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    if let Some(id) = session::session_id(&headers) {
        portal.sessions.remove(&id);
    }
    Redirect::to("/portal").into_response()
}

async fn switch(Query(query): Query<HashMap<String, String>>) -> Response {
    // The tenant is percent-encoded into the path, so no character of it can leave the path.
    let tenant = query.get("tenant").cloned().unwrap_or_default();
    Redirect::to(&format!("/portal/t/{}", html::encode(&tenant))).into_response()
}

/// Sends the person to sign in to `tenant`, coming back to `return_to`.
pub(crate) fn sign_in_first(tenant: &str, return_to: &str) -> Response {
    Redirect::to(&format!(
        "/portal/signin?tenant={}&return={}",
        html::encode(tenant),
        html::encode(return_to)
    ))
    .into_response()
}

/// A tenant's home: its subscriptions, and where to go.
async fn home(SignedIn { mut visit, tenant }: SignedIn) -> Response {
    let answer =
        visit.arm(&tenant, None, Method::GET, "/subscriptions?api-version=2022-12-01", None).await;
    let mut body = String::new();
    if !answer.ok() {
        body.push_str(&html::error(&answer.error_text()));
    }
    let rows: Vec<Vec<String>> = answer.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                escape(s["displayName"].as_str().unwrap_or_default()),
                escape(s["subscriptionId"].as_str().unwrap_or_default()),
            ]
        })
        .collect();
    body.push_str("<h2>Subscriptions</h2>");
    body.push_str(&html::table("subscriptions", &["Name", "Subscription id"], &rows));
    body.push_str(&format!(
        "<ul><li><a href=\"/portal/t/{0}/managers\">Network managers</a></li><li><a href=\"/portal/t/{0}/vnets\">Virtual networks</a></li></ul>",
        escape(&tenant)
    ));
    visit.page("Home", &tenant, &body)
}

/// A visit signed in to the tenant of the path (`/portal/t/{tenant}/…`): the extractor every
/// tenant page starts with. Without a token for that tenant the person is sent to sign in, and
/// comes back to the page (to the tenant's home after a form).
#[derive(Debug)]
pub(crate) struct SignedIn {
    pub visit: Visit,
    pub tenant: String,
}

impl FromRequestParts<Arc<Portal>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        portal: &Arc<Portal>,
    ) -> Result<SignedIn, Response> {
        let Path(tenant) = Path::<String>::from_request_parts(parts, portal)
            .await
            .map_err(IntoResponse::into_response)?;
        let visit = Visit::from(portal, &parts.headers);
        if visit.tokens.contains_key(&tenant) {
            return Ok(SignedIn { visit, tenant });
        }
        let return_to = match parts.method {
            Method::GET => parts
                .uri
                .path_and_query()
                .map_or_else(|| format!("/portal/t/{tenant}"), |target| target.as_str().to_owned()),
            _ => format!("/portal/t/{tenant}"),
        };
        Err(sign_in_first(&tenant, &return_to))
    }
}

/// The subscriptions the person sees in `tenant`.
pub(crate) async fn subscriptions(visit: &mut Visit, tenant: &str) -> Result<Vec<String>, String> {
    let answer =
        visit.arm(tenant, None, Method::GET, "/subscriptions?api-version=2022-12-01", None).await;
    if !answer.ok() {
        return Err(answer.error_text());
    }
    Ok(answer.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["subscriptionId"].as_str().map(str::to_owned))
        .collect())
}

/// The resources of type `kind` (e.g. `virtualNetworks`) in every subscription the person sees in
/// `tenant`, each with its subscription, and the errors met on the way as HTML.
pub(crate) async fn across_subscriptions(
    visit: &mut Visit,
    tenant: &str,
    kind: &str,
) -> (Vec<(String, Value)>, String) {
    let mut errors = String::new();
    let mut found = Vec::new();
    match subscriptions(visit, tenant).await {
        Err(error) => errors.push_str(&html::error(&error)),
        Ok(subscriptions) => {
            for subscription in subscriptions {
                let path = format!(
                    "/subscriptions/{subscription}/providers/Microsoft.Network/{kind}?api-version=2025-07-01"
                );
                let answer = visit.arm(tenant, None, Method::GET, &path, None).await;
                if !answer.ok() {
                    errors.push_str(&html::error(&answer.error_text()));
                }
                for item in answer.body["value"].as_array().into_iter().flatten() {
                    found.push((subscription.clone(), item.clone()));
                }
            }
        }
    }
    (found, errors)
}
