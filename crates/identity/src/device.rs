//! The device-code flow (`az login --use-device-code`): `POST /{tenant}/oauth2/v2.0/devicecode`
//! hands out a device code and a user code; a person opens `/devicelogin`, enters the user code
//! and signs in; meanwhile the device polls the token endpoint, which answers
//! `authorization_pending` until then and the tokens after.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;
use store::Timestamp;
use store::identity::DeviceCode;

use crate::Identity;
use crate::client::is_first_party_client;
use crate::error::{OAuthError, json_response};
use crate::pages::{credential_fields, error_paragraph, escape, sign_in_failure, sign_in_message};
use crate::secret::client_secret_hash;
use crate::signin::SignInError;
use crate::token::{
    DEVICE_CODE_LIFETIME_SECONDS, is_known_resource, is_multi_tenant_segment, resource_of,
};

/// How often the device should poll, in seconds.
pub const POLL_INTERVAL_SECONDS: i64 = 5;

/// Letters and digits that cannot be mistaken for one another.
const USER_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

const MAX_FORM_BYTES: usize = 64 * 1024;

/// The routes, to merge into the server's router.
pub fn router(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/devicecode", post(device_code))
        .route("/devicelogin", get(login_page).post(login_submit))
        .with_state(identity)
}

fn form_params(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

async fn device_code(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let source = client_address(&request).unwrap_or_default();
    let headers = request.headers().clone();
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await else {
        return OAuthError::missing_parameter("client_id").response(identity.now(), &headers);
    };
    let params = form_params(&body);
    // Device codes cost a row each and their user codes are short: an address may ask for a
    // few a minute.
    if !identity.device_code_rate.allow(&source, identity.now()) {
        return OAuthError::too_many_device_codes().response(identity.now(), &headers);
    }
    match start(&identity, &tenant, &params).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error.response(identity.now(), &headers),
    }
}

async fn start(
    identity: &Identity,
    tenant: &str,
    params: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    if !is_multi_tenant_segment(tenant) {
        let segment = tenant.to_owned();
        let found = identity
            .store()
            .read(move |tx| tx.tenant_find(&segment))
            .await
            .map_err(OAuthError::from)?;
        found.ok_or_else(|| OAuthError::unknown_tenant(tenant))?;
    }
    let client_id = params
        .get("client_id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| OAuthError::missing_parameter("client_id"))?;
    if !is_first_party_client(client_id) {
        return Err(OAuthError::unknown_application(client_id, tenant));
    }
    let scope = params
        .get("scope")
        .filter(|scope| !scope.is_empty())
        .ok_or_else(|| OAuthError::missing_parameter("scope"))?;
    let resource = resource_of(scope)?;
    if !is_known_resource(resource, identity.origin()) {
        return Err(OAuthError::unknown_resource(resource, tenant));
    }
    let random = SystemRandom::new();
    let mut device_bytes = [0u8; 32];
    let mut user_bytes = [0u8; 9];
    random.fill(&mut device_bytes).map_err(|_| OAuthError::server_error())?;
    random.fill(&mut user_bytes).map_err(|_| OAuthError::server_error())?;
    let device_code = URL_SAFE_NO_PAD.encode(device_bytes);
    let user_code: String = user_bytes
        .iter()
        .map(|byte| char::from(USER_CODE_ALPHABET[usize::from(*byte) % USER_CODE_ALPHABET.len()]))
        .collect();
    let record = DeviceCode {
        device_code_sha256: client_secret_hash(&device_code),
        user_code: user_code.clone(),
        client_id: client_id.clone(),
        tenant_segment: tenant.to_owned(),
        scope: scope.clone(),
        user_id: None,
        expires_at: Timestamp(identity.now().0 + DEVICE_CODE_LIFETIME_SECONDS * 1000),
    };
    let now = identity.now();
    identity
        .store()
        .write(move |tx| {
            tx.codes_delete_expired(now)?;
            tx.device_code_insert(&record)
        })
        .await
        .map_err(OAuthError::from)?;
    let verification_uri = format!("{}/devicelogin", identity.origin());
    Ok(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": DEVICE_CODE_LIFETIME_SECONDS,
        "interval": POLL_INTERVAL_SECONDS,
        "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
    }))
}

fn page(title: &str, body: &str) -> Response {
    crate::pages::page(StatusCode::OK, title, body)
}

fn code_form(error: Option<&str>) -> Response {
    let error = error_paragraph(error);
    page(
        "Enter code",
        &format!(
            "<h1>Enter code</h1><p>Enter the code shown by the application you want to sign in to.</p>{error}\
             <form method=\"post\"><label for=\"user_code\">Code</label>\
             <input id=\"user_code\" name=\"user_code\" autocomplete=\"off\" required autofocus>\
             <button type=\"submit\" id=\"next\">Next</button></form>"
        ),
    )
}

fn credentials_form(user_code: &str, username: &str, error: Option<&str>) -> Response {
    let error = error_paragraph(error);
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1><p>Signing in a device with code <strong>{}</strong>.</p>{error}\
             <form method=\"post\"><input type=\"hidden\" name=\"user_code\" value=\"{}\">{}</form>",
            escape(user_code),
            escape(user_code),
            credential_fields(username)
        ),
    )
}

async fn login_page() -> Response {
    code_form(None)
}

/// The client's IP address, as the listener saw it.
pub(crate) fn client_address(request: &Request) -> Option<String> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string())
}

async fn login_submit(State(identity): State<Arc<Identity>>, request: Request) -> Response {
    let client_address = client_address(&request);
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await else {
        return code_form(Some("The form could not be read."));
    };
    let params = form_params(&body);
    let user_code = params
        .get("user_code")
        .map(|code| code.trim().replace('-', "").to_ascii_uppercase())
        .unwrap_or_default();
    let lookup = user_code.clone();
    let record = match identity.store().read(move |tx| tx.device_code_by_user_code(&lookup)).await {
        Ok(Some(record)) if record.expires_at > identity.now() && record.user_id.is_none() => {
            record
        }
        Ok(_) => {
            return code_form(Some(
                "That code is not valid, has expired or was already used. Check it and try again.",
            ));
        }
        Err(_) => return code_form(Some("The directory is unavailable; try again.")),
    };
    let (Some(username), Some(password)) = (params.get("username"), params.get("password")) else {
        return credentials_form(&user_code, "", None);
    };
    let tenant = if is_multi_tenant_segment(&record.tenant_segment) {
        None
    } else {
        let segment = record.tenant_segment.clone();
        match identity.store().read(move |tx| tx.tenant_find(&segment)).await {
            Ok(tenant) => tenant,
            Err(_) => return code_form(Some("The directory is unavailable; try again.")),
        }
    };
    match identity.sign_in(username, password, tenant.as_ref(), client_address.as_deref()).await {
        Ok(user) => {
            let (code, user_id) = (user_code.clone(), user.id.clone());
            match identity.store().write(move |tx| tx.device_code_approve(&code, &user_id)).await {
                Ok(true) => page(
                    "Signed in",
                    "<h1>You're signed in</h1><p>You have signed in to the application on your device. You may now close this window.</p>",
                ),
                Ok(false) => code_form(Some("That code was already used.")),
                Err(_) => code_form(Some("The directory is unavailable; try again.")),
            }
        }
        Err(SignInError::Unavailable) => {
            code_form(Some("The directory is unavailable; try again."))
        }
        Err(error) => sign_in_failure(
            credentials_form(
                &user_code,
                username,
                Some(&sign_in_message(&error, &record.tenant_segment)),
            ),
            &error,
        ),
    }
}
