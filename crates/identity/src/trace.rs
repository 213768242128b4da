//! What a response tells the server's request log besides its status, kept in the response's
//! extensions: who called, the route's template, and the cause of an internal error. Never a
//! token, password or secret.

/// The caller of a request: its tenant and object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerTrace {
    pub tenant_id: String,
    pub object_id: String,
}

/// The route a request took, as a template (`…/virtualNetworks/{virtualNetworkName}`), where the
/// router's own pattern says less.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTrace(pub String);

/// Why a request failed inside the server: the error and its causes, for the log only (the
/// client is told to quote the request id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalCause(pub String);

/// An error with all its sources, `outer: inner: innermost`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !chain.contains(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = cause.source();
    }
    chain
}
