//! Reading an HTML form the way a browser submits it, for the suites that play the browser at
//! a real provider (`tests/e2e.rs`, `tests/connections_e2e.rs`).

use url::Url;

/// The first `<form>` of a page: its action, resolved against the page URL, and its hidden
/// inputs.
pub fn form(page: &Url, html: &str) -> Option<(Url, Vec<(String, String)>)> {
    let attr = regex::Regex::new(r#"([a-zA-Z_-]+)="([^"]*)""#).unwrap();
    let attrs = |tag: &str| -> Vec<(String, String)> {
        attr.captures_iter(tag)
            .map(|c| (c[1].to_string(), c[2].replace("&amp;", "&")))
            .collect()
    };
    let get =
        |a: &[(String, String)], k: &str| a.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let start = html.find("<form")?;
    let tag_end = start + html[start..].find('>')?;
    let action = get(&attrs(&html[start..tag_end]), "action")?;
    let end = tag_end
        + html[tag_end..]
            .find("</form>")
            .unwrap_or(html.len() - tag_end);
    let mut hidden = Vec::new();
    let mut rest = &html[tag_end..end];
    while let Some(i) = rest.find("<input") {
        let j = i + rest[i..].find('>').unwrap_or(rest.len() - i);
        let a = attrs(&rest[i..j]);
        if get(&a, "type").as_deref() == Some("hidden") {
            if let (Some(n), Some(v)) = (get(&a, "name"), get(&a, "value")) {
                hidden.push((n, v));
            }
        }
        rest = &rest[j..];
    }
    Some((page.join(&action).ok()?, hidden))
}
