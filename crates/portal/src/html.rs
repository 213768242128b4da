//! HTML: escaping, the page layout (header with the signed-in person, their tenants and a
//! switcher), and small pieces the pages share. No scripts: every action is a link or a form,
//! and every form that changes something carries the session's form token (`csrf_field`).

use serde_json::Value;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A signed-in tenant for the header.
#[derive(Debug, Clone)]
pub struct Signed {
    pub tenant_id: String,
    pub upn: String,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b}\
header{background:#0b3d91;color:#fff;padding:.5rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}\
header a,header button{color:#fff}header button{background:transparent;border:1px solid #fff;cursor:pointer}header select{font-size:.9rem}header form{display:inline}main{padding:1rem 1.5rem;max-width:1200px}\
nav.crumbs{margin-bottom:.5rem}table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}\
.error{background:#fde7e9;border:1px solid #a80000;padding:.6rem;margin:.6rem 0}.ok{background:#dff6dd;border:1px solid #107c10;padding:.6rem;margin:.6rem 0}\
.tabs a{margin-right:1rem}.tabs a[aria-current]{font-weight:bold}label{display:block;margin:.4rem 0}\
input,select,button{font-size:1rem}button{padding:.3rem .8rem}.muted{color:#555}dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}";

/// The hidden input every state-changing form carries: the session's form token.
pub fn csrf_field(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", escape(token))
}

/// A whole page: header (who is signed in where, the tenant switcher), then `body`. `csrf` is
/// the session's form token, for the sign-out form.
pub fn page(
    title: &str,
    signed: &[Signed],
    current: Option<&str>,
    body: &str,
    csrf: &str,
) -> String {
    let mut header = String::from("<strong>crosspool</strong>");
    if let Some(current) = current {
        let who = signed.iter().find(|s| s.tenant_id == current);
        if let Some(who) = who {
            header.push_str(&format!(
                "<span id=\"signed-in\">Signed in as <b>{}</b> in tenant <b>{}</b></span>",
                escape(&who.upn),
                escape(&who.tenant_id)
            ));
        }
        header.push_str(&format!(
            "<a href=\"/portal/t/{0}\">Home</a><a href=\"/portal/t/{0}/managers\">Network managers</a><a href=\"/portal/t/{0}/vnets\">Virtual networks</a>",
            escape(current)
        ));
    }
    if signed.len() > 1 || current.is_none() && !signed.is_empty() {
        let options: String = signed
            .iter()
            .map(|s| {
                let selected = if Some(s.tenant_id.as_str()) == current { " selected" } else { "" };
                format!(
                    "<option value=\"{0}\"{selected}>{0} ({1})</option>",
                    escape(&s.tenant_id),
                    escape(&s.upn)
                )
            })
            .collect();
        header.push_str(&format!(
            "<form method=\"get\" action=\"/portal/switch\"><label style=\"display:inline\">Tenant <select name=\"tenant\" id=\"tenant-switcher\">{options}</select></label> <button type=\"submit\">Switch</button></form>"
        ));
    }
    header.push_str("<a href=\"/portal\">Sign in to a tenant</a>");
    if !signed.is_empty() {
        header.push_str(&format!(
            "<form method=\"post\" action=\"/portal/signout\">{}<button type=\"submit\">Sign out</button></form>",
            csrf_field(csrf)
        ));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{} · crosspool</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head>\
         <body><header>{header}</header><main><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    )
}

/// An error box.
pub fn error(text: &str) -> String {
    format!("<div class=\"error\" role=\"alert\">{}</div>", escape(text))
}

/// A success box.
pub fn ok(text: &str) -> String {
    format!("<div class=\"ok\" role=\"status\">{}</div>", escape(text))
}

/// A table with header cells and rows of already-escaped HTML cells.
pub fn table(id: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let head: String =
        headers.iter().map(|h| format!("<th scope=\"col\">{}</th>", escape(h))).collect();
    let body: String = rows
        .iter()
        .map(|row| {
            format!(
                "<tr>{}</tr>",
                row.iter().map(|cell| format!("<td>{cell}</td>")).collect::<String>()
            )
        })
        .collect();
    if rows.is_empty() {
        return format!(
            "<table id=\"{id}\"><thead><tr>{head}</tr></thead><tbody></tbody></table><p class=\"muted\">Nothing here yet.</p>"
        );
    }
    format!("<table id=\"{id}\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
}

/// The last segment of an ARM id.
pub fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// An array of strings as comma-separated escaped text.
pub fn list(value: &Value) -> String {
    value
        .as_array()
        .map(|items| {
            items.iter().filter_map(Value::as_str).map(escape).collect::<Vec<_>>().join(", ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(name_of("/subscriptions/s/x/y"), "y");
    }
}
