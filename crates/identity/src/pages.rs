//! The identity platform's HTML: the page shell every sign-in, consent and device-login page
//! shares, escaping, and the headers those pages carry — never cached (they carry codes), never
//! framed, and a Content-Security-Policy that allows only their own style and, on the page that
//! posts a code back to an application, its one script and that application's origin.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::signin::SignInError;

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

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}\
label{display:block;margin-top:1rem}input{width:100%;padding:.5rem;font-size:1rem}\
input[type=checkbox]{width:auto}button{margin-top:1.5rem;margin-right:.5rem;padding:.6rem 1.2rem;font-size:1rem}\
.error{color:#a4262c}.muted{color:#555}ul.permissions{padding-left:1.2rem}";

/// The script of the form_post page: it submits the form that carries the code.
const SUBMIT_SCRIPT: &str = "document.getElementById('response').submit();";

fn sha256_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
    )
}

/// A complete, styled HTML page around `body` (which the caller has escaped).
fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">\
         <style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    )
}

/// A page response with the identity pages' headers; `form_action` is where its forms may post
/// besides this origin.
fn respond(status: StatusCode, html: String, script: Option<&str>, form_action: &str) -> Response {
    let script_source = script.map_or_else(|| "'none'".to_owned(), sha256_source);
    let policy = format!(
        "default-src 'none'; style-src {}; img-src data:; script-src {script_source}; form-action 'self'{}; frame-ancestors 'none'; base-uri 'none'",
        sha256_source(STYLE),
        if form_action.is_empty() { String::new() } else { format!(" {form_action}") },
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// A page with `status`.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    respond(status, document(title, body), None, "")
}

/// The platform's error page: `AADSTS{code}: {message}`, never a redirect.
pub fn error_page(status: StatusCode, code: u32, message: &str) -> Response {
    let body = format!(
        "<h1>Sign-in failed</h1><p class=\"error\" role=\"alert\">AADSTS{code}: {}</p>",
        escape(message)
    );
    page(status, "Sign-in failed", &body)
}

/// The page that posts a code (or an error) back to an application (`response_mode=form_post`):
/// `action` is a redirect URI already checked (`client::parse_redirect_uri`), `origin` its
/// origin, `fields` the names and values to post.
pub fn form_post(action: &str, origin: &str, fields: &[(&str, &str)]) -> Response {
    let inputs: String = fields
        .iter()
        .map(|(name, value)| {
            format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value))
        })
        .collect();
    let body = format!(
        "<p>Signed in. Returning to the application…</p>\
         <form id=\"response\" method=\"post\" action=\"{}\">{inputs}\
         <noscript><button type=\"submit\">Continue</button></noscript></form>\
         <script>{SUBMIT_SCRIPT}</script>",
        escape(action)
    );
    respond(StatusCode::OK, document("Signed in", &body), Some(SUBMIT_SCRIPT), origin)
}

/// The hidden inputs that carry `fields` through a form.
pub fn hidden_inputs<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    fields
        .into_iter()
        .map(|(name, value)| {
            format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value))
        })
        .collect()
}

/// An error paragraph, if there is an error.
pub fn error_paragraph(error: Option<&str>) -> String {
    error.map_or_else(String::new, |message| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(message))
    })
}

/// The user name and password fields with the sign-in button.
pub fn credential_fields(username: &str) -> String {
    format!(
        "<label for=\"username\">Username</label>\
         <input id=\"username\" name=\"username\" type=\"email\" autocomplete=\"username\" required autofocus value=\"{}\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button>",
        escape(username)
    )
}

/// What a sign-in page says about a failed sign-in.
pub fn sign_in_message(error: &SignInError, tenant: &str) -> String {
    match error {
        SignInError::LockedOut => {
            "AADSTS50053: Your account is locked because of too many failed sign-ins. Try again later.".to_owned()
        }
        SignInError::BadCredentials => "AADSTS50126: Your account or password is incorrect.".to_owned(),
        SignInError::Disabled => "AADSTS50057: The user account is disabled.".to_owned(),
        SignInError::NotInTenant { upn } => format!("AADSTS50020: User account '{upn}' does not exist in tenant '{tenant}'."),
        SignInError::Throttled => "AADSTS90055: Too many sign-ins are in progress; wait a few seconds and try again.".to_owned(),
        SignInError::Unavailable => "AADSTS90100: The directory is unavailable; try again.".to_owned(),
    }
}

/// The status a page answers a failed sign-in with: 429 (with `Retry-After`) when throttled.
pub fn sign_in_failure(mut response: Response, error: &SignInError) -> Response {
    if *error == SignInError::Throttled {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::limiter::THROTTLE_RETRY_AFTER_SECONDS),
        );
    }
    response
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
    fn pages_are_not_cached_framed_or_scripted() {
        let response = page(StatusCode::OK, "Sign in", "<p>x</p>");
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-frame-options"], "DENY");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'none'"));
        let response = form_post("http://localhost:1/", "http://localhost:1", &[("code", "c")]);
        let policy = response.headers()["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("form-action 'self' http://localhost:1;"), "{policy}");
        assert!(policy.contains(&sha256_source(SUBMIT_SCRIPT)), "{policy}");
    }
}
