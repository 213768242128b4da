//! Client checks shared by the authorize page, the admin-consent page, the token endpoint and
//! Graph: which redirect URIs a client may use, parsed with the WHATWG URL rules (`url`), never
//! by hand.
//!
//! A redirect URI is acceptable only if it parses, holds no control character or space, has no
//! fragment, and is `https` or a loopback `http` address (RFC 8252 §7.3: scheme `http`, no
//! userinfo, host exactly `127.0.0.1`, `[::1]` or `localhost`, any port). The first-party public
//! clients may use any loopback address; every other client only a URI it registered, compared
//! exactly.

use store::error::StoreError;
use store::identity::{ApplicationRecord, TenantRecord, UserRecord};
use url::{Host, Url};

use crate::{AZURE_CLI_CLIENT_ID, AZURE_POWERSHELL_CLIENT_ID, Identity};

/// Why a redirect URI is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("it contains a control character or a space")]
    ControlCharacter,
    #[error("it is not an absolute URL: {0}")]
    Malformed(url::ParseError),
    #[error("it has a fragment")]
    Fragment,
    #[error("it must use https, or http on a loopback address (127.0.0.1, [::1] or localhost)")]
    Scheme,
    #[error("it carries a user name or password")]
    Userinfo,
}

/// Parses a redirect URI and checks that it is `https` or loopback `http`.
pub fn parse_redirect_uri(text: &str) -> Result<Url, RedirectUriError> {
    // The WHATWG parser drops tabs and newlines silently; a URI holding them is refused, not
    // repaired, so what is checked is what the client sent.
    if text.chars().any(|character| character.is_control() || character == ' ') {
        return Err(RedirectUriError::ControlCharacter);
    }
    let url = Url::parse(text).map_err(RedirectUriError::Malformed)?;
    if url.fragment().is_some() {
        return Err(RedirectUriError::Fragment);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectUriError::Userinfo);
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(RedirectUriError::Scheme),
    }
}

/// Whether `url` is a loopback `http` address as RFC 8252 §7.3 describes it.
pub fn is_loopback(url: &Url) -> bool {
    let host_ok = match url.host() {
        Some(Host::Ipv4(address)) => address == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(address)) => address == std::net::Ipv6Addr::LOCALHOST,
        Some(Host::Domain(domain)) => domain == "localhost",
        None => false,
    };
    url.scheme() == "http" && url.username().is_empty() && url.password().is_none() && host_ok
}

/// Checks a URI an application registers (Graph's `web.redirectUris`), as Entra does: https,
/// or http on a loopback address.
pub fn check_registration(text: &str) -> Result<(), RedirectUriError> {
    parse_redirect_uri(text).map(|_| ())
}

/// The first-party public clients every tenant has.
pub fn is_first_party_client(client_id: &str) -> bool {
    [AZURE_CLI_CLIENT_ID, AZURE_POWERSHELL_CLIENT_ID, crate::PORTAL_CLIENT_ID]
        .iter()
        .any(|known| known.eq_ignore_ascii_case(client_id))
}

/// A client of the authorize and token endpoints.
#[derive(Debug, Clone)]
pub enum Client {
    /// The az CLI or Azure PowerShell: public, in every tenant, any loopback redirect URI.
    FirstParty,
    /// crosspool's own portal: public, in every tenant, one redirect URI.
    Portal,
    /// A registered application: confidential (it authenticates with a secret), its registered
    /// redirect URIs only, and users' tokens only where it has consent.
    Registered { application: Box<ApplicationRecord>, publisher: TenantRecord },
}

/// Why a client cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// No such application (AADSTS700016).
    Unknown,
    /// The directory could not be read.
    Unavailable,
}

impl From<StoreError> for ClientError {
    fn from(_: StoreError) -> ClientError {
        ClientError::Unavailable
    }
}

/// Why a redirect URI is not this client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectRefusal {
    /// It is not a redirect URI at all (or not a safe one).
    Invalid(RedirectUriError),
    /// It is safe, but not one the client may use (AADSTS50011).
    NotRegistered,
}

impl Client {
    /// The client with this id.
    pub async fn find(identity: &Identity, client_id: &str) -> Result<Client, ClientError> {
        if client_id.eq_ignore_ascii_case(crate::PORTAL_CLIENT_ID) {
            return Ok(Client::Portal);
        }
        if is_first_party_client(client_id) {
            return Ok(Client::FirstParty);
        }
        let app_id = client_id.to_owned();
        let found = identity
            .store()
            .read(move |tx| {
                let Some(application) = tx.application_by_app_id(&app_id)? else {
                    return Ok(None);
                };
                let publisher = tx.tenant_find(&application.tenant_id)?;
                Ok::<_, StoreError>(publisher.map(|publisher| (application, publisher)))
            })
            .await?;
        let (application, publisher) = found.ok_or(ClientError::Unknown)?;
        Ok(Client::Registered { application: Box::new(application), publisher })
    }

    /// Whether this is a public client, which proves itself with PKCE instead of a secret.
    pub fn is_public(&self) -> bool {
        !matches!(self, Client::Registered { .. })
    }

    /// The redirect URI parsed, if this client may use it.
    pub fn redirect_uri(&self, origin: &str, text: &str) -> Result<Url, RedirectRefusal> {
        let url = parse_redirect_uri(text).map_err(RedirectRefusal::Invalid)?;
        let allowed = match self {
            Client::Portal => text == format!("{origin}{}", crate::PORTAL_CALLBACK_PATH),
            Client::FirstParty => is_loopback(&url),
            Client::Registered { application, .. } => {
                application.redirect_uris.iter().any(|registered| registered == text)
            }
        };
        if allowed { Ok(url) } else { Err(RedirectRefusal::NotRegistered) }
    }

    /// Whether the client signs in users of `tenant_id`: a single-tenant application only its
    /// own tenant's.
    pub fn serves_tenant(&self, tenant_id: &str) -> bool {
        match self {
            Client::Registered { application, .. } => {
                application.tenant_id == tenant_id
                    || application.sign_in_audience == "AzureADMultipleOrgs"
            }
            _ => true,
        }
    }

    /// Whether `user`'s tokens may go to this client: always for the first-party clients; for a
    /// registered application, only with its service principal in the user's tenant and the
    /// user's (or an administrator's) consent there.
    pub async fn has_consent(
        &self,
        identity: &Identity,
        user: &UserRecord,
    ) -> Result<bool, StoreError> {
        let Client::Registered { application, .. } = self else { return Ok(true) };
        if !self.serves_tenant(&user.tenant_id) {
            return Ok(false);
        }
        let (tenant_id, app_id, user_id) =
            (user.tenant_id.clone(), application.app_id.clone(), user.id.clone());
        identity
            .store()
            .read(move |tx| {
                Ok(tx.service_principal_find(&tenant_id, &app_id)?.is_some()
                    && tx.consent_exists(&tenant_id, &app_id, &user_id)?)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> String {
        match parse_redirect_uri(text) {
            Ok(url) if is_loopback(&url) => format!("loopback {url}"),
            Ok(url) => format!("https {url}"),
            Err(error) => format!("refused: {error}"),
        }
    }

    // Regression test for issue 19 (1): userinfo before `@` made the old check see a loopback host.
    #[test]
    fn userinfo_never_passes_for_loopback() {
        for text in [
            "http://127.0.0.1:80@attacker.example/",
            "http://localhost:1@attacker.example/",
            "http://[::1]:1@attacker.example/",
            "http://127.0.0.1:@attacker.example/",
            "http://user@localhost/",
        ] {
            assert!(check(text).starts_with("refused"), "{text}: {}", check(text));
        }
    }

    #[test]
    fn loopback_is_http_on_three_hosts_and_any_port() {
        for (text, expected) in [
            ("http://localhost:51234", "loopback http://localhost:51234/"),
            ("http://localhost", "loopback http://localhost/"),
            ("http://127.0.0.1:8400/callback", "loopback http://127.0.0.1:8400/callback"),
            ("http://[::1]:9000/", "loopback http://[::1]:9000/"),
            ("https://app.example/cb?x=1", "https https://app.example/cb?x=1"),
            (
                "http://localhost.attacker.example/",
                "refused: it must use https, or http on a loopback address (127.0.0.1, [::1] or localhost)",
            ),
            (
                "http://attacker.example/?localhost",
                "refused: it must use https, or http on a loopback address (127.0.0.1, [::1] or localhost)",
            ),
            (
                "http://10.0.0.1/",
                "refused: it must use https, or http on a loopback address (127.0.0.1, [::1] or localhost)",
            ),
            (
                "javascript:alert(1)//",
                "refused: it must use https, or http on a loopback address (127.0.0.1, [::1] or localhost)",
            ),
            (
                "data:text/html,<script>alert(1)</script>",
                "refused: it must use https, or http on a loopback address (127.0.0.1, [::1] or localhost)",
            ),
            (
                "data:text/html;base64,PHNjcmlwdD4=",
                "refused: it must use https, or http on a loopback address (127.0.0.1, [::1] or localhost)",
            ),
            ("https://app.example/cb#x", "refused: it has a fragment"),
            (
                "http://localhost/\r\nSet-Cookie:x=1",
                "refused: it contains a control character or a space",
            ),
            ("/relative", "refused: it is not an absolute URL: relative URL without a base"),
            ("", "refused: it is not an absolute URL: relative URL without a base"),
        ] {
            assert_eq!(check(text), expected, "{text}");
        }
    }
}
