//! The authorization endpoint of the code flow: `GET /{tenant}/oauth2/v2.0/authorize` shows a
//! sign-in page, and its form posts back here; a right password yields a single-use code sent to
//! the client's redirect URI (as a query string, or an auto-submitted form for
//! `response_mode=form_post`, which MSAL uses). The code is redeemed at the token endpoint with
//! the PKCE verifier.
//!
//! Redirect URIs: the first-party public clients may use any loopback `http://localhost` or
//! `http://127.0.0.1` address (as MSAL's interactive sign-in does); a registered app only the
//! URIs it registered. An unacceptable client or redirect URI is shown as an error page and never
//! redirected to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use ring::rand::{SecureRandom, SystemRandom};
use store::Timestamp;
use store::identity::{AuthorizationCode, TenantRecord};

use crate::Identity;
use crate::secret::client_secret_hash;
use crate::signin::SignInError;
use crate::token::{is_first_party_client, is_multi_tenant_segment};

/// How long a code may wait to be redeemed.
pub const CODE_LIFETIME_MS: i64 = 5 * 60 * 1000;

/// The largest sign-in form accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The routes, to merge into the server's router.
pub fn router(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/authorize", get(show).post(submit))
        .with_state(identity)
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The request parameters the sign-in form carries through.
const CARRIED: [&str; 9] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// A complete, styled HTML page around `body` (which the caller has escaped).
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}\
         label{{display:block;margin-top:1rem}}input{{width:100%;padding:.5rem;font-size:1rem}}\
         button{{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}}.error{{color:#a4262c}}</style></head>\
         <body><main>{body}</main></body></html>",
        escape(title)
    )
}

fn error_page(status: StatusCode, code: u32, message: &str) -> Response {
    let body = format!(
        "<h1>Sign-in failed</h1><p class=\"error\" role=\"alert\">AADSTS{code}: {}</p>",
        escape(message)
    );
    (status, Html(page("Sign-in failed", &body))).into_response()
}

/// Whether `redirect_uri` is a loopback HTTP address, as MSAL's interactive sign-in uses.
fn is_loopback_redirect(redirect_uri: &str) -> bool {
    let Some(rest) = redirect_uri.strip_prefix("http://") else { return false };
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host_port.rsplit_once(':').map_or(host_port, |(host, _)| host);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// The tenant and a checked client for an authorize request, or the page to show instead.
async fn check_request(
    identity: &Identity,
    tenant: &str,
    params: &HashMap<String, String>,
) -> Result<Option<TenantRecord>, Response> {
    let tenant_record = if is_multi_tenant_segment(tenant) {
        None
    } else {
        let segment = tenant.to_owned();
        match identity.store().read(move |tx| tx.tenant_find(&segment)).await {
            Ok(Some(found)) => Some(found),
            Ok(None) => {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    90002,
                    &format!("Tenant '{tenant}' not found."),
                ));
            }
            Err(_) => {
                return Err(error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    90100,
                    "The directory is unavailable; try again.",
                ));
            }
        }
    };
    let client_id = params.get("client_id").map(String::as_str).unwrap_or("");
    let redirect_uri = params.get("redirect_uri").map(String::as_str).unwrap_or("");
    if params.get("response_type").map(String::as_str) != Some("code") {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            900144,
            "The request must contain response_type=code.",
        ));
    }
    let redirect_ok = if client_id.eq_ignore_ascii_case(crate::PORTAL_CLIENT_ID) {
        redirect_uri == format!("{}{}", identity.origin(), crate::PORTAL_CALLBACK_PATH)
    } else if is_first_party_client(client_id) {
        is_loopback_redirect(redirect_uri)
    } else {
        let app_id = client_id.to_owned();
        match identity.store().read(move |tx| tx.application_by_app_id(&app_id)).await {
            Ok(Some(application)) => {
                application.redirect_uris.iter().any(|uri| uri == redirect_uri)
            }
            Ok(None) => {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    700016,
                    &format!(
                        "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                    ),
                ));
            }
            Err(_) => {
                return Err(error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    90100,
                    "The directory is unavailable; try again.",
                ));
            }
        }
    };
    if !redirect_ok {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
            ),
        ));
    }
    match params.get("code_challenge_method").map(String::as_str) {
        None | Some("S256") => {}
        Some(_) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                501491,
                "Only code_challenge_method=S256 is supported.",
            ));
        }
    }
    if is_first_party_client(client_id) && params.get("code_challenge").is_none_or(String::is_empty)
    {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            9002325,
            "Proof Key for Code Exchange is required for public clients.",
        ));
    }
    Ok(tenant_record)
}

/// What the sign-in page says about a failed sign-in.
pub fn sign_in_message(error: &SignInError, tenant: &str) -> String {
    match error {
        SignInError::LockedOut => {
            "AADSTS50053: Your account is locked because of too many failed sign-ins. Try again later.".to_owned()
        }
        SignInError::BadCredentials => "AADSTS50126: Your account or password is incorrect.".to_owned(),
        SignInError::NotInTenant { upn } => format!("AADSTS50020: User account '{upn}' does not exist in tenant '{tenant}'."),
        SignInError::Unavailable => "AADSTS90100: The directory is unavailable; try again.".to_owned(),
    }
}

pub(crate) fn sign_in_form(
    tenant: &str,
    params: &HashMap<String, String>,
    username: &str,
    error: Option<&str>,
) -> Response {
    let hidden: String = CARRIED
        .iter()
        .filter_map(|name| params.get(*name).map(|value| (name, value)))
        .map(|(name, value)| {
            format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(value))
        })
        .collect();
    let error = error.map_or_else(String::new, |message| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(message))
    });
    let body = format!(
        "<h1>Sign in</h1><p>to <strong>{}</strong> (crosspool)</p>{error}\
         <form method=\"post\">{hidden}\
         <label for=\"username\">Username</label>\
         <input id=\"username\" name=\"username\" type=\"email\" autocomplete=\"username\" required autofocus value=\"{}\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>",
        escape(tenant),
        escape(username)
    );
    let mut response = Html(page("Sign in", &body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

async fn show(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match check_request(&identity, &tenant, &params).await {
        Ok(_) => {
            let login_hint = params.get("login_hint").map(String::as_str).unwrap_or("");
            sign_in_form(&tenant, &params, login_hint, None)
        }
        Err(page) => page,
    }
}

async fn submit(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let client_address =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await else {
        return error_page(StatusCode::BAD_REQUEST, 900144, "The sign-in form could not be read.");
    };
    let params: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let tenant_record = match check_request(&identity, &tenant, &params).await {
        Ok(tenant_record) => tenant_record,
        Err(page) => return page,
    };
    let username = params.get("username").cloned().unwrap_or_default();
    let password = params.get("password").cloned().unwrap_or_default();
    let user = match identity
        .sign_in(&username, &password, tenant_record.as_ref(), client_address.as_deref())
        .await
    {
        Ok(user) => user,
        Err(SignInError::Unavailable) => {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                90100,
                "The directory is unavailable; try again.",
            );
        }
        Err(error) => {
            return sign_in_form(
                &tenant,
                &params,
                &username,
                Some(&sign_in_message(&error, &tenant)),
            );
        }
    };
    let now = identity.now();
    let mut code_bytes = [0u8; 32];
    if SystemRandom::new().fill(&mut code_bytes).is_err() {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            90100,
            "No randomness available; try again.",
        );
    }
    use base64::Engine;
    let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(code_bytes);
    let param = |name: &str| params.get(name).cloned().unwrap_or_default();
    let record = AuthorizationCode {
        code_sha256: client_secret_hash(&code),
        client_id: param("client_id"),
        redirect_uri: param("redirect_uri"),
        user_id: user.id.clone(),
        tenant_id: user.tenant_id.clone(),
        scope: param("scope"),
        code_challenge: params
            .get("code_challenge")
            .filter(|challenge| !challenge.is_empty())
            .cloned(),
        nonce: params.get("nonce").filter(|nonce| !nonce.is_empty()).cloned(),
        expires_at: Timestamp(now.0 + CODE_LIFETIME_MS),
    };
    if identity.store().write(move |tx| tx.authorization_code_insert(&record)).await.is_err() {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            90100,
            "The directory is unavailable; try again.",
        );
    }
    let redirect_uri = param("redirect_uri");
    let state = params.get("state");
    if params.get("response_mode").map(String::as_str) == Some("form_post") {
        let state_field = state.map_or_else(String::new, |state| {
            format!("<input type=\"hidden\" name=\"state\" value=\"{}\">", escape(state))
        });
        let body = format!(
            "<p>Signed in. Returning to the application…</p>\
             <form id=\"response\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"code\" value=\"{code}\">{state_field}\
             <noscript><button type=\"submit\">Continue</button></noscript></form>\
             <script>document.getElementById('response').submit();</script>",
            escape(&redirect_uri)
        );
        return Html(page("Signed in", &body)).into_response();
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("code", &code);
    if let Some(state) = state {
        query.append_pair("state", state);
    }
    Redirect::to(&format!("{redirect_uri}{separator}{}", query.finish())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn only_loopback_http_redirects_count_as_loopback() {
        for uri in [
            "http://localhost:51234",
            "http://localhost",
            "http://127.0.0.1:8400/callback",
            "http://[::1]:9000/",
        ] {
            assert!(is_loopback_redirect(uri), "{uri}");
        }
        for uri in [
            "https://localhost:1",
            "http://localhost.evil.example/",
            "http://evil.example/?localhost",
            "http://10.0.0.1/",
            "",
        ] {
            assert!(!is_loopback_redirect(uri), "{uri}");
        }
    }
}
