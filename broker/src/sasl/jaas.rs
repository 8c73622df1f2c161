//! Kafka's `sasl.jaas.config` values: one login module, a control flag and `key="value"` options ending in
//! `;`, e.g. `org.apache.kafka.common.security.scram.ScramLoginModule required username="a" password="b";`.

use std::collections::BTreeMap;

pub const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
pub const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

#[derive(Clone, PartialEq, Eq)]
pub struct JaasEntry {
    pub module: String,
    pub options: BTreeMap<String, String>,
}

/// Option names only: the values are passwords.
impl std::fmt::Debug for JaasEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JaasEntry").field("module", &self.module).field("options", &self.options.keys()).finish()
    }
}

/// Words, `=`, `;` and double-quoted strings (backslash escapes the next character).
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' | ';' => {
                out.push(c.to_string());
                chars.next();
            }
            '"' => {
                chars.next();
                let mut s = String::from("\"");
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted value".into()),
                        Some('"') => break,
                        Some('\\') => s.push(chars.next().ok_or("unterminated quoted value")?),
                        Some(c) => s.push(c),
                    }
                }
                out.push(s);
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}

pub fn parse(text: &str) -> Result<JaasEntry, String> {
    let tokens = tokens(text)?;
    let word = |t: &str| !t.starts_with('"') && t != "=" && t != ";";
    let mut it = tokens.iter().map(String::as_str);
    let module = it.next().filter(|t| word(t)).ok_or("expected a login module class name")?.to_string();
    match it.next() {
        Some("required" | "requisite" | "sufficient" | "optional") => {}
        other => return Err(format!("expected the control flag (required) after {module}, found {other:?}")),
    }
    let mut options = BTreeMap::new();
    loop {
        match it.next() {
            Some(";") => break,
            Some(key) if word(key) => {
                if it.next() != Some("=") {
                    return Err(format!("expected = after {key}"));
                }
                let value = it.next().filter(|v| *v != "=" && *v != ";").ok_or_else(|| format!("no value for {key}"))?;
                options.insert(key.to_string(), value.strip_prefix('"').unwrap_or(value).to_string());
            }
            other => return Err(format!("expected key=\"value\" or the closing ;, found {other:?}")),
        }
    }
    if let Some(rest) = it.next() {
        return Err(format!("one login module only: unexpected {rest:?} after ;"));
    }
    Ok(JaasEntry { module, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_modules() {
        let e =
            parse(r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="a \"b\" c";"#)
                .unwrap();
        assert_eq!(e.module, SCRAM_MODULE);
        assert_eq!(e.options["username"], "admin");
        assert_eq!(e.options["password"], "a \"b\" c");
        assert!(!format!("{e:?}").contains("a \"b\" c"), "passwords stay out of Debug");
        let p = parse(&format!("{PLAIN_MODULE} required\n user_alice=\"x=;y\" username=admin password=\"\";")).unwrap();
        assert_eq!(
            (p.options["user_alice"].as_str(), p.options["username"].as_str(), p.options["password"].as_str()),
            ("x=;y", "admin", "")
        );
        for (bad, why) in [
            ("", "class name"),
            ("Module", "control flag"),
            ("Module always a=\"b\";", "control flag"),
            ("Module required a=\"b\"", "closing ;"),
            ("Module required a \"b\";", "expected ="),
            ("Module required a=;", "no value"),
            ("Module required a=\"b;", "unterminated"),
            ("Module required; Other required;", "one login module"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
